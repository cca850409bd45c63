-- The system stream, and tracking positions for processors that follow the log.
--
-- 1. system_events: the events only the server writes (commands, alerts, audit,
--    configuration, processor decisions). They share the log's positions (one sequence, one
--    append lock), so a follower reads both streams merged in position order, but not its
--    daily partitions: retention drops traffic's partitions, never these; an admin purges
--    them explicitly. Same columns as `events` but `day`.
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

-- 2. tracking: how far each processor has folded each connection's log. A processor writes
--    its output and its new position in one transaction, and a position only moves forward
--    (the eventsourcing library's tracking contract), so a restart resumes exactly once.
CREATE TABLE tracking (
    connection_id uuid   NOT NULL,
    processor     text   NOT NULL,
    position      bigint NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connection_id, processor)
);
