-- Browser sessions: a key with `read` scope opens one (`POST /api/session`), its cookie holds
-- a random token of which only the SHA-256 hash is stored here, so it survives a restart and
-- every API replica sees it. Account metadata, like api_keys (a Citus reference table).
--
-- sessions: the key the browser acts with now (its connection and scopes), the session's
-- CSRF token (sent back in a header on every state-changing request) and its expiry.
-- Deleting or revoking the key ends the session (the lookup joins api_keys).
CREATE TABLE sessions (
    id          bytea PRIMARY KEY,
    key_id      text NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    csrf_token  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX sessions_key_idx ON sessions (key_id);
CREATE INDEX sessions_expiry_idx ON sessions (expires_at);

-- Every key signed in to a session: the connection switcher offers their connections.
CREATE TABLE session_keys (
    session_id  bytea NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    key_id      text NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    added_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, key_id)
);
CREATE INDEX session_keys_key_idx ON session_keys (key_id);

-- One-time sign-in links (`sluice demo` prints one): the hash of a random token that opens
-- one session for its key, once, before it expires.
CREATE TABLE login_tokens (
    hash        bytea PRIMARY KEY,
    key_id      text NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);
CREATE INDEX login_tokens_key_idx ON login_tokens (key_id);
