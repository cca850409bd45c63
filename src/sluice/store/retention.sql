-- name: retentions
SELECT id::text, retention_hours FROM connections

-- name: event_partitions
-- The daily partitions of the log (events_default is purged row by row).
SELECT c.relname
FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
JOIN pg_class p ON p.oid = i.inhparent
WHERE p.relname = 'events' AND c.relname ~ '^events_p[0-9]{8}$'
ORDER BY c.relname

-- name: delete_events
-- `day <=` lets the planner skip the partitions that cannot hold expired rows.
DELETE FROM events
WHERE connection_id = %(connection_id)s AND day <= %(cutoff_day)s AND ts < %(cutoff)s

-- name: delete_jobs
-- A job expires with its latest event; its history (in its row) goes with it.
WITH gone AS (
    DELETE FROM jobs
    WHERE connection_id = %(connection_id)s AND last_event_at < %(cutoff)s
    RETURNING json_array_length(history) AS transitions
)
SELECT count(*), coalesce(sum(transitions), 0) FROM gone

-- name: delete_rollups
DELETE FROM rollups_minute WHERE connection_id = %(connection_id)s AND minute < %(cutoff)s

-- name: delete_queue_samples
DELETE FROM queue_samples WHERE connection_id = %(connection_id)s AND sampled_at < %(cutoff)s

-- name: delete_queues
DELETE FROM queues WHERE connection_id = %(connection_id)s AND sampled_at < %(cutoff)s

-- name: delete_workers
DELETE FROM workers WHERE connection_id = %(connection_id)s AND last_event_at < %(cutoff)s

-- name: delete_usage
DELETE FROM usage_daily WHERE day < %(before)s

-- name: try_lock
SELECT pg_try_advisory_lock(%(id)s)

-- name: unlock
SELECT pg_advisory_unlock(%(id)s)
