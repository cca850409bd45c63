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

-- name: expire_rows
-- A read model's expired rows (table and time column: a registry entry's Expiry).
DELETE FROM {table} WHERE connection_id = %(connection_id)s AND {column} < %(cutoff)s

-- name: delete_system_events
DELETE FROM system_events
WHERE ts < %(before)s
  AND (%(connection_id)s::uuid IS NULL OR connection_id = %(connection_id)s::uuid)

-- name: try_lock
SELECT pg_try_advisory_lock(%(id)s)

-- name: unlock
SELECT pg_advisory_unlock(%(id)s)

-- name: drop_timeout
-- Dropping a partition needs an exclusive lock on `events`: never queue behind a long append.
SET LOCAL lock_timeout = '5s'

-- name: drop_partition
DROP TABLE IF EXISTS {name}
