-- name: reserve_positions
-- One round trip: the log lock, then the append's batch number and n positions, then the
-- notification of the last one (sent at commit, dropped by a rollback). Volatile calls keep
-- each subquery from being flattened, so they run in this order.
-- The lock serializes appends, so a follower that has read position N never later finds a
-- committed event below N (the eventsourcing PostgreSQL recorders' discipline: one lock per
-- append transaction). An advisory lock rather than LOCK TABLE: the log is partitioned and
-- locking every partition costs each append more than the insert itself. It is held only for
-- the insert: projection happens before it, under per-job locks.
SELECT batch, first,
       pg_notify(%(channel)s, %(prefix)s || (first + %(n)s - 1)::text)
FROM (
    SELECT nextval('event_batch') AS batch,
           setval('event_position', nextval('event_position') + %(n)s - 1) - %(n)s + 1 AS first
    FROM (SELECT pg_advisory_xact_lock(5847263917)) AS lock
) AS reserved

-- name: existing_keys
-- One day per call (one partition, pruned at plan time); one unique-index probe per key.
-- LATERAL + LIMIT 1 keeps the plan a nested loop of probes whatever the statistics say
-- (with fresh or skewed statistics the planner otherwise scans the whole day).
SELECT u.dedup_key
FROM unnest(%(keys)b::text[]) AS u(dedup_key)
CROSS JOIN LATERAL (
    SELECT 1 FROM events
    WHERE connection_id = %(connection_id)s AND day = %(day)s AND dedup_key = u.dedup_key
    LIMIT 1
) AS e

-- name: existing_system_keys
SELECT dedup_key FROM system_events
WHERE connection_id = %(connection_id)s AND dedup_key = ANY(%(keys)s::text[])

-- name: copy_events
COPY events (connection_id, day, position, batch, dedup_key, kind, job_id, hostname, queue,
             ts, payload) FROM STDIN (FORMAT BINARY)

-- name: copy_system_events
COPY system_events (connection_id, position, batch, dedup_key, kind, job_id, hostname,
                    queue, ts, payload) FROM STDIN (FORMAT BINARY)

-- name: read_from
-- A connection's two streams merged in position order: each an ordered range of its
-- primary key.
SELECT position, batch, ingested_at, payload::text, dedup_key, job_id, hostname, queue
FROM (
    (SELECT position, batch, ingested_at, payload, dedup_key, job_id, hostname, queue
     FROM events
     WHERE connection_id = %(connection_id)s AND position > %(after)s
     ORDER BY position
     LIMIT %(limit)s)
    UNION ALL
    (SELECT position, batch, ingested_at, payload, dedup_key, job_id, hostname, queue
     FROM system_events
     WHERE connection_id = %(connection_id)s AND position > %(after)s
     ORDER BY position
     LIMIT %(limit)s)
) AS log
ORDER BY position
LIMIT %(limit)s

-- name: last_position
SELECT greatest(
    (SELECT max(position) FROM events WHERE connection_id = %(connection_id)s),
    (SELECT max(position) FROM system_events WHERE connection_id = %(connection_id)s),
    0)

-- name: logged_connections
-- The connections that have a log (loose index scans: one probe per connection; uuid has
-- no min(), hence ORDER BY .. LIMIT 1).
WITH RECURSIVE t(id) AS (
    (SELECT connection_id FROM events ORDER BY connection_id LIMIT 1)
    UNION ALL
    SELECT (SELECT e.connection_id FROM events e WHERE e.connection_id > t.id
            ORDER BY e.connection_id LIMIT 1)
    FROM t WHERE t.id IS NOT NULL
), s(id) AS (
    (SELECT connection_id FROM system_events ORDER BY connection_id LIMIT 1)
    UNION ALL
    SELECT (SELECT e.connection_id FROM system_events e WHERE e.connection_id > s.id
            ORDER BY e.connection_id LIMIT 1)
    FROM s WHERE s.id IS NOT NULL
)
SELECT id::text FROM t WHERE id IS NOT NULL
UNION
SELECT id::text FROM s WHERE id IS NOT NULL
ORDER BY 1

-- name: count_events
SELECT (SELECT count(*) FROM events
        WHERE connection_id = %(connection_id)s AND position > %(after)s)
     + (SELECT count(*) FROM system_events
        WHERE connection_id = %(connection_id)s AND position > %(after)s)
