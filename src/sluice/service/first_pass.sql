-- A rebuild's first pass. {schema}: the shadow schema.

-- name: create_progress
-- How far each shard of a connection's first pass went: its part of the log up to `upto`,
-- in (job, position) order, folded up to the event (job, position), `events` events in
-- all. Unlogged, as the shadow's tables and tracking.
CREATE UNLOGGED TABLE {schema}.first_pass (
    connection_id uuid NOT NULL,
    shard integer NOT NULL,
    shards integer NOT NULL,
    upto bigint NOT NULL,
    job text COLLATE "C" NOT NULL DEFAULT '',
    position bigint NOT NULL DEFAULT 0,
    events bigint NOT NULL DEFAULT 0,
    copied boolean NOT NULL DEFAULT false,  -- its part of the log is in its copy, whole
    PRIMARY KEY (connection_id, shard)
)

-- name: progress
SELECT shard, shards, upto, job, position, copied FROM {schema}.first_pass
WHERE connection_id = %(connection_id)s
ORDER BY shard

-- name: start
INSERT INTO {schema}.first_pass (connection_id, shard, shards, upto)
SELECT %(connection_id)s, s, %(shards)s, %(upto)s FROM generate_series(0, %(shards)s - 1) AS s

-- name: advance
-- with the chunk's output, in its transaction
UPDATE {schema}.first_pass
SET job = %(job)s, position = %(position)s, events = events + %(events)s
WHERE connection_id = %(connection_id)s AND shard = %(shard)s

-- name: events_done
SELECT coalesce(sum(events), 0) FROM {schema}.first_pass

-- name: create_copy
-- A shard's copy of its part of a connection's log: read from the log in short statements
-- (a partition being created waits for every read of the log, and appends wait behind it),
-- then sorted at leisure. Unlogged: a copy lost in a crash is made again.
CREATE UNLOGGED TABLE {copy} (
    job text COLLATE "C" NOT NULL,  -- the job id, '' for events of no job
    position bigint NOT NULL,
    ingested_at timestamptz NOT NULL,
    payload text NOT NULL,
    dedup_key text NOT NULL,
    job_id text,
    hostname text,
    queue text
)

-- name: drop_copy
DROP TABLE IF EXISTS {copy}

-- name: copy_slice
-- The shard's events of a range of positions (a hash of the job id picks the shard).
INSERT INTO {copy}
SELECT coalesce(job_id, ''), position, ingested_at, payload::text, dedup_key, job_id,
       hostname, queue
FROM events
WHERE connection_id = %(connection_id)s AND position > %(after)s AND position <= %(until)s
  AND abs(hashtext(coalesce(job_id, '')) %% %(shards)s) = %(shard)s
UNION ALL
SELECT coalesce(job_id, ''), position, ingested_at, payload::text, dedup_key, job_id,
       hostname, queue
FROM system_events
WHERE connection_id = %(connection_id)s AND position > %(after)s AND position <= %(until)s
  AND abs(hashtext(coalesce(job_id, '')) %% %(shards)s) = %(shard)s

-- name: first_position
-- where the connection's log begins: the slices start there
SELECT least((SELECT min(position) FROM events WHERE connection_id = %(connection_id)s),
             (SELECT min(position) FROM system_events WHERE connection_id = %(connection_id)s))

-- name: copied
UPDATE {schema}.first_pass SET copied = true
WHERE connection_id = %(connection_id)s AND shard = %(shard)s

-- name: by_job
-- The copy, each job's events together: by job id (events of no job first), then
-- position; {after} skips what a killed pass folded. One sort, read a chunk at a time.
SELECT job, position, ingested_at, payload, dedup_key, job_id, hostname, queue
FROM {copy}
{after}
ORDER BY job, position

-- name: after
WHERE (job, position) > (%(job)s, %(position)s)

-- name: lock_shard
-- a worker of a killed rebuild may still be finishing its chunk: wait for it
SELECT pg_advisory_lock(%(id)s)
