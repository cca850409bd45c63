-- API keys (stored as SHA-256 hashes only) and per-connection daily usage for quotas.

-- Keys are looked up by hash on every request and revoked by id: like `connections`, this is
-- account metadata (a Citus reference table), not a connection's event data.
CREATE TABLE api_keys (
    id            text PRIMARY KEY,          -- key_<hex>, shown in listings, used to revoke
    connection_id uuid NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    hash          bytea NOT NULL UNIQUE,     -- sha256 of the whole key; the key is never stored
    prefix        text NOT NULL,             -- first characters of the key, to recognise it
    scopes        text[] NOT NULL CHECK (scopes <@ ARRAY['ingest', 'read', 'operate', 'admin']),
    name          text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz
);
CREATE INDEX api_keys_connection_idx ON api_keys (connection_id, created_at);

-- Events accepted per connection and UTC day (server clock): the quota counter. Updated in the
-- transaction that appends the events, under a row lock, so the count is exact.
CREATE TABLE usage_daily (
    connection_id uuid   NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    day           date   NOT NULL,
    accepted      bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (connection_id, day)
);
