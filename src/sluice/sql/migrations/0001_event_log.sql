-- The event log and the read models folded from it.
-- Every table of a connection's data leads its keys with connection_id (distributable by
-- connection); the log is partitioned by the events' source day (retention = drop partition).

CREATE TABLE connections (
    id              uuid PRIMARY KEY,
    name            text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    daily_limit     bigint CHECK (daily_limit IS NULL OR daily_limit >= 0),
    retention_hours integer NOT NULL DEFAULT 168 CHECK (retention_hours > 0)
);

CREATE SEQUENCE event_position AS bigint;
CREATE SEQUENCE event_batch AS bigint;

CREATE TABLE events (
    connection_id uuid        NOT NULL,
    day           date        NOT NULL,  -- UTC day of the source timestamp
    position      bigint      NOT NULL,  -- orders the whole log; readable in order by followers
    batch         bigint      NOT NULL,  -- the append that stored it (replay re-runs appends)
    dedup_key     text        NOT NULL,
    kind          text        NOT NULL,
    job_id        text,
    hostname      text,
    queue         text,
    ts            timestamptz NOT NULL,  -- source timestamp
    ingested_at   timestamptz NOT NULL DEFAULT now(),
    payload       json        NOT NULL,  -- the unified event as sent: SQL reads it (->>) and
                                         -- json keeps it verbatim, cheaper to write than jsonb
    -- a connection's log in position order (followers, SSE resume, replay)
    PRIMARY KEY (connection_id, position, day),
    UNIQUE (connection_id, day, dedup_key)
) PARTITION BY RANGE (day);
-- Deliberately no more indexes: every one costs the ingest path. A job's events are folded
-- from the copy its jobs row keeps (jobs.fold), not looked up here.

CREATE TABLE events_default PARTITION OF events DEFAULT;

CREATE TABLE jobs (
    connection_id uuid NOT NULL,
    job_id        text NOT NULL,
    state         text NOT NULL,
    name          text,
    queue         text,
    routing_key   text,
    worker        text,
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
    parent_id     text,
    root_id       text,
    group_id      text,
    rejected      boolean NOT NULL DEFAULT false,
    first_seen_at timestamptz NOT NULL,  -- earliest source timestamp of any of its events
    last_event_at timestamptz NOT NULL,
    events        integer NOT NULL,
    outcomes      jsonb NOT NULL DEFAULT '[]',  -- its rollup contributions, to revise them
    fold          bytea NOT NULL,        -- its events in fold order (msgpack): merge input
    PRIMARY KEY (connection_id, job_id)
);
CREATE INDEX jobs_recent_idx ON jobs (connection_id, first_seen_at DESC, job_id DESC);
CREATE INDEX jobs_state_idx ON jobs (connection_id, state, first_seen_at DESC, job_id DESC);

CREATE TABLE job_transitions (
    connection_id uuid NOT NULL,
    job_id        text NOT NULL,
    seq           integer NOT NULL,
    state         text NOT NULL,
    at            timestamptz NOT NULL,
    kind          text NOT NULL,
    hostname      text,
    attempt       integer NOT NULL,
    dedup_key     text NOT NULL,
    PRIMARY KEY (connection_id, job_id, seq)
);

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
