-- Sluice's current schema, in one file, for reading: what applying every migration in
-- migrations/ in order gives. Databases are built and upgraded by the migrations
-- (`sluice migrate`, or `serve` at start-up), never from this file; a test
-- (tests/integration/test_schema.py) holds the two equal, so a new migration comes with its
-- change here too.
--
-- Every table of a connection's data leads its keys with connection_id (distributable by
-- connection). Ids, keys and filter columns use the "C" collation: index inserts compare
-- with memcmp instead of the locale's strcoll, and a btree on them serves prefix search
-- (LIKE 'abc%').


-- The migrations applied (`sluice.store.migrations.migrate` creates it first).
CREATE TABLE schema_migrations (
    version    text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);


-- Account metadata -----------------------------------------------------------------------

CREATE TABLE connections (
    id              uuid PRIMARY KEY,
    name            text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    daily_limit     bigint CHECK (daily_limit IS NULL OR daily_limit >= 0),
    retention_hours integer NOT NULL DEFAULT 168 CHECK (retention_hours > 0),
    -- keep task arguments and results: ingest drops them from every source's events
    -- before the log unless this is on
    capture_args    boolean NOT NULL DEFAULT false,
    -- the connection's broker and result backend, for commands (secrets: never returned with
    -- their passwords); when an agent executor last asked for commands
    broker_url         text,
    result_backend_url text,
    executor_seen_at   timestamptz,
    CONSTRAINT connections_name_key UNIQUE (name)  -- one connection per name
);

-- Keys are stored as SHA-256 hashes only, looked up by hash on every request and revoked by
-- id: like `connections`, account metadata (a Citus reference table), not a connection's
-- event data.
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

-- Events accepted per connection and UTC day (server clock): the quota counter. Updated in
-- the transaction that appends the events, under a row lock, so the count is exact.
CREATE TABLE usage_daily (
    connection_id uuid   NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    day           date   NOT NULL,
    accepted      bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (connection_id, day)
);


-- The log ----------------------------------------------------------------------------------

-- Both streams take their positions from one sequence (under one append lock), so a
-- follower reads them merged in position order.
CREATE SEQUENCE event_position AS bigint;
CREATE SEQUENCE event_batch AS bigint;

-- Traffic: what Celery did, as the SDK and the agent report it. Partitioned by the events'
-- source day so that retention drops whole partitions; the daily partitions
-- (events_pYYYYMMDD) are created at run time (`sluice.store.partitions`), ahead of need.
CREATE TABLE events (
    connection_id uuid        NOT NULL,
    day           date        NOT NULL,  -- UTC day of the source timestamp
    position      bigint      NOT NULL,  -- orders the whole log; readable in order by followers
    batch         bigint      NOT NULL,  -- the append that stored it (replay re-runs appends)
    dedup_key     text COLLATE "C" NOT NULL,
    kind          text        NOT NULL,
    job_id        text,
    hostname      text,
    queue         text,
    ts            timestamptz NOT NULL,  -- source timestamp
    ingested_at   timestamptz NOT NULL DEFAULT now(),
    payload       json        NOT NULL,  -- SQL reads it (->>); json keeps it verbatim and is
                                         -- cheaper to write than jsonb
    -- a connection's log in position order (followers, SSE resume, replay)
    PRIMARY KEY (connection_id, position, day),
    UNIQUE (connection_id, day, dedup_key)
) PARTITION BY RANGE (day);
-- Deliberately no more indexes: every one costs the ingest path. A job's events are folded
-- from the copy its jobs row keeps (jobs.fold), not looked up here.

-- Payloads are trimmed to save WAL bytes; rows stored before the trim hold both, with the
-- same values.
COMMENT ON COLUMN events.payload IS
    'The unified event without the values of this row''s other columns (connection_id, '
    'dedup_key, job_id, hostname, queue), which readers merge back';

-- Rows whose day has no partition (yet).
CREATE TABLE events_default PARTITION OF events DEFAULT;

-- The system stream: the events only the server writes (commands, alerts, audit,
-- configuration, processor decisions). Not partitioned: retention drops traffic's
-- partitions, never these; an admin purges them explicitly. Same columns as `events` but
-- `day`.
CREATE TABLE system_events (
    connection_id uuid        NOT NULL,
    position      bigint      NOT NULL,
    batch         bigint      NOT NULL,
    dedup_key     text COLLATE "C" NOT NULL,
    kind          text        NOT NULL,
    job_id        text,
    hostname      text,
    queue         text,
    ts            timestamptz NOT NULL,
    ingested_at   timestamptz NOT NULL DEFAULT now(),
    payload       json        NOT NULL,
    PRIMARY KEY (connection_id, position),
    UNIQUE (connection_id, dedup_key)
);

-- How far each processor has folded each connection's log. A processor writes its output
-- and its new position in one transaction, and a position only moves forward (the
-- eventsourcing library's tracking contract), so a restart resumes exactly once.
CREATE TABLE tracking (
    connection_id uuid   NOT NULL,
    processor     text   NOT NULL,
    position      bigint NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connection_id, processor)
);


-- Read models (written only by their projectors, sluice.views) ---------------------------

-- jobs: one row per job, its state history inside it. The history is only ever read whole,
-- with its job: a table of its own cost every append ~6 more rows per job.
CREATE TABLE jobs (
    connection_id uuid NOT NULL,
    job_id        text COLLATE "C" NOT NULL,
    state         text COLLATE "C" NOT NULL,
    name          text,
    queue         text COLLATE "C",
    routing_key   text,
    worker        text COLLATE "C",
    retries       integer NOT NULL DEFAULT 0,
    args          text,
    kwargs        text,
    result        text,
    sent_at       timestamptz,
    received_at   timestamptz,
    started_at    timestamptz,
    finished_at   timestamptz,
    runtime       double precision,
    exception     text,
    traceback     text,
    eta           text,
    expires       text,
    parent_id     text COLLATE "C",
    root_id       text,
    group_id      text COLLATE "C",
    rejected      boolean NOT NULL DEFAULT false,
    first_seen_at timestamptz NOT NULL,  -- earliest source timestamp of any of its events
    last_event_at timestamptz NOT NULL,
    events        integer NOT NULL,
    -- its rollup contributions, to revise them; only ever read back whole by the projector,
    -- hence json. (The default is still the jsonb literal of the column's first type: it
    -- casts to the same '[]'.)
    outcomes      json NOT NULL DEFAULT '[]'::jsonb,
    fold          bytea NOT NULL,        -- its events in fold order (msgpack): merge input
    -- its transitions: [state, at (epoch s), kind, hostname, attempt] each (histories
    -- stored before 0005 carry a sixth element, the dedup key, which nothing reads)
    history       json NOT NULL DEFAULT '[]',
    PRIMARY KEY (connection_id, job_id)
);
-- Every index leads with connection_id, and the list ones end in the list order
-- (first_seen_at DESC, job_id DESC) so a filtered page is an index range scan + LIMIT. The
-- newest-first list over all states, and the one by queue, merge each state's ordered range
-- lazily: they need no index of their own. Fewer indexes, fewer entries per job write (each
-- job is written about twice).
CREATE INDEX jobs_state_idx ON jobs (connection_id, state, first_seen_at DESC, job_id DESC);
CREATE INDEX jobs_state_queue_idx
    ON jobs (connection_id, state, queue, first_seen_at DESC, job_id DESC);
-- A job has no worker until one receives it (the producer's write): only rows with a worker
-- can match a worker filter.
CREATE INDEX jobs_worker_idx ON jobs (connection_id, worker, first_seen_at DESC, job_id DESC)
    WHERE worker IS NOT NULL;
CREATE INDEX jobs_parent_idx ON jobs (connection_id, parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX jobs_group_idx ON jobs (connection_id, group_id) WHERE group_id IS NOT NULL;
-- recent finishes per worker (tasks per minute)
CREATE INDEX jobs_worker_finished_idx ON jobs (connection_id, worker, finished_at DESC)
    WHERE finished_at IS NOT NULL;
-- (job id prefix search uses the primary key: job_id is "C")

-- The relational shape of the histories, for SQL (and the job detail's history).
CREATE VIEW job_transitions AS
SELECT j.connection_id, j.job_id, (h.n - 1)::integer AS seq, h.e->>0 AS state,
       to_timestamp((h.e->>1)::float8) AS at, h.e->>2 AS kind, h.e->>3 AS hostname,
       (h.e->>4)::integer AS attempt
FROM jobs AS j
CROSS JOIN LATERAL json_array_elements(j.history) WITH ORDINALITY AS h(e, n);

-- Per-minute counts of finished attempts, for the overview, throughput and queue stats.
CREATE TABLE rollups_minute (
    connection_id uuid NOT NULL,
    minute        timestamptz NOT NULL,
    name          text NOT NULL,  -- '' when the task name is not known (yet)
    queue         text NOT NULL,
    outcome       text NOT NULL,  -- completed | failed | cancelled | retrying
    count         bigint NOT NULL,
    runtime_sum   double precision NOT NULL,
    runtime_max   double precision,
    PRIMARY KEY (connection_id, minute, name, queue, outcome)
);
-- read by time (and queue): covering indexes let them scan the index alone (old minutes
-- are all-visible)
CREATE INDEX rollups_time_idx ON rollups_minute (connection_id, minute)
    INCLUDE (name, outcome, count);
CREATE INDEX rollups_queue_idx ON rollups_minute (connection_id, queue, minute)
    INCLUDE (outcome, count, runtime_sum);

CREATE TABLE workers (
    connection_id   uuid NOT NULL,
    hostname        text NOT NULL,
    status          text NOT NULL,  -- online | offline as last reported ("lost" is read-time)
    first_seen_at   timestamptz NOT NULL,
    last_event_at   timestamptz NOT NULL,
    last_event_clock bigint NOT NULL,
    last_event_key  text NOT NULL,
    last_heartbeat  timestamptz,           -- the worker's own clock
    -- when Sluice received the worker's latest event: liveness is judged on it, as Celery's
    -- own State does (local_received), so a worker with a skewed clock is not "lost"
    last_received_at timestamptz,
    freq            double precision,
    active          integer,
    processed       bigint,
    loadavg         double precision[],
    sw_ident        text,
    sw_ver          text,
    sw_sys          text,
    pid             integer,
    PRIMARY KEY (connection_id, hostname)
);

-- queues: each queue's latest broker sample; queue_samples: every sample, for charts.
CREATE TABLE queues (
    connection_id uuid NOT NULL,
    name          text NOT NULL,
    depth         bigint NOT NULL,
    consumers     integer,
    sampled_at    timestamptz NOT NULL,
    sample_key    text NOT NULL,
    PRIMARY KEY (connection_id, name)
);

CREATE TABLE queue_samples (
    connection_id uuid NOT NULL,
    name          text NOT NULL,
    sampled_at    timestamptz NOT NULL,
    depth         bigint NOT NULL,
    consumers     integer,
    PRIMARY KEY (connection_id, name, sampled_at)
);


-- commands: one row per command, folded from the system stream's command.* events
-- (requested, running, succeeded | failed).
CREATE TABLE commands (
    connection_id uuid NOT NULL,
    command_id    text COLLATE "C" NOT NULL,
    action        text,                    -- retry, revoke, pool_grow, ... (domain.commands)
    status        text COLLATE "C" NOT NULL,  -- requested | running | succeeded | failed
    job_id        text COLLATE "C",
    hostname      text,
    queue         text,
    task_name     text,
    bulk_id       text COLLATE "C",        -- a job's command inside a bulk action
    total         integer,                 -- a bulk action: how many jobs it holds
    params        json,
    requested_by  text,
    requested_at  timestamptz,
    claims        integer NOT NULL DEFAULT 0,  -- times an agent executor claimed it
    claimed_by    text,
    claimed_at    timestamptz,
    reason        text,
    new_job_id    text COLLATE "C",
    result        json,
    finished_at   timestamptz,
    PRIMARY KEY (connection_id, command_id)
);
-- the list (bulk actions' own job commands are read under their bulk)
CREATE INDEX commands_list_idx ON commands (connection_id, requested_at DESC, command_id DESC)
    WHERE bulk_id IS NULL;
-- a bulk action's jobs: its progress by status, its per-job list
CREATE INDEX commands_bulk_idx ON commands (connection_id, bulk_id, status, command_id)
    WHERE bulk_id IS NOT NULL;
-- a job's commands, and the job a retry created
CREATE INDEX commands_job_idx ON commands (connection_id, job_id) WHERE job_id IS NOT NULL;
CREATE INDEX commands_new_job_idx ON commands (connection_id, new_job_id)
    WHERE new_job_id IS NOT NULL;
-- what executors still have to do
CREATE INDEX commands_pending_idx ON commands (connection_id, requested_at)
    WHERE status IN ('requested', 'running');
-- revokes to send again to a worker that comes online
CREATE INDEX commands_revoked_idx ON commands (connection_id, finished_at)
    WHERE action = 'revoke' AND status = 'succeeded';


-- Browser sessions ---------------------------------------------------------------------------

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

-- Substring search ---------------------------------------------------------------------------

-- Name and exception substring search uses a trigram GIN index when pg_trgm is available
-- (contrib: present in distribution PostgreSQL, absent from pgserver's embedded build);
-- without it the read queries scan a bounded window of recent jobs. One index over name and
-- exception only: job ids are searched by prefix, on the primary key, and their ~38
-- trigrams each cost a job write more than all its btrees together.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
        BEGIN
            CREATE EXTENSION IF NOT EXISTS pg_trgm;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'pg_trgm not installed (no privilege): substring search unindexed';
        END;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        CREATE INDEX jobs_text_trgm_idx ON jobs USING gin (
            lower(coalesce(name, '') || ' ' || coalesce(exception, '')) gin_trgm_ops);
    END IF;
END
$$;
