-- name: lock_log
-- Appends are serialized, so a follower that has read position N never later finds a
-- committed event below N (the eventsourcing PostgreSQL recorders' discipline: one lock per
-- append transaction). An advisory lock rather than LOCK TABLE: the log is partitioned and
-- locking every partition costs each append more than the insert itself. Held only for the
-- insert: projection happens before it, under per-job locks.
SELECT pg_advisory_xact_lock(5847263917)

-- name: reserve_positions
-- One round trip: the log lock (lock_log's), then the append's batch number and n positions,
-- then the notification of the last one (sent at commit, dropped by a rollback). Volatile
-- calls keep each subquery from being flattened, so they run in this order.
SELECT batch, first,
       pg_notify('sluice_events', %(connection_id)s || ':' || (first + %(n)s - 1)::text)
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

-- name: copy_events
COPY events (connection_id, day, position, batch, dedup_key, kind, job_id, hostname, queue,
             ts, payload) FROM STDIN (FORMAT BINARY)

-- name: read_connection_from
SELECT position, connection_id::text, payload::text, dedup_key, job_id, hostname, queue
FROM events
WHERE connection_id = %(connection_id)s AND position > %(after)s
ORDER BY position
LIMIT %(limit)s
