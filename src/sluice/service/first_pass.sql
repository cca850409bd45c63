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
    PRIMARY KEY (connection_id, shard)
)

-- name: progress
SELECT shard, shards, upto, job, position FROM {schema}.first_pass
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

-- name: log_by_job
-- A shard of a connection's log up to a position, each job's events together: by job id
-- (events of no job first), then position; after the (job, position) where the shard
-- stopped. One sort in the server, which the caller reads a chunk at a time.
SELECT job, position, ingested_at, payload::text, dedup_key, job_id, hostname, queue
FROM (SELECT coalesce(job_id, '') AS job, position, ingested_at, payload, dedup_key, job_id,
             hostname, queue
      FROM events
      WHERE connection_id = %(connection_id)s AND position <= %(upto)s
      UNION ALL
      SELECT coalesce(job_id, ''), position, ingested_at, payload, dedup_key, job_id,
             hostname, queue
      FROM system_events
      WHERE connection_id = %(connection_id)s AND position <= %(upto)s) AS log
WHERE abs(hashtext(job) %% %(shards)s) = %(shard)s
  AND (job COLLATE "C", position) > (%(job)s COLLATE "C", %(position)s)
ORDER BY job COLLATE "C", position

-- name: lock_shard
-- a worker of a killed rebuild may still be finishing its chunk: wait for it
SELECT pg_advisory_lock(%(id)s)
