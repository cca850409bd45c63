-- name: lock_log
-- Appends are serialized, so a follower that has read position N never later finds a
-- committed event below N (the eventsourcing PostgreSQL recorders' discipline). Held only
-- for the insert itself: projection happens before it, under per-job locks.
LOCK TABLE events IN EXCLUSIVE MODE

-- name: next_batch
SELECT nextval('event_batch')

-- name: reserve_positions
SELECT setval('event_position', nextval('event_position') + %(n)s - 1) - %(n)s + 1

-- name: existing_keys
-- LATERAL: one unique-index probe per key, in the one partition of its day.
SELECT e.dedup_key
FROM unnest(%(days)b::date[], %(keys)b::text[]) AS u(day, dedup_key)
CROSS JOIN LATERAL (
    SELECT dedup_key FROM events
    WHERE connection_id = %(connection_id)s AND day = u.day AND dedup_key = u.dedup_key
    LIMIT 1  -- keeps the planner from flattening this into a hash join over the log
) AS e

-- name: copy_events
COPY events (connection_id, day, position, batch, dedup_key, kind, job_id, hostname, queue,
             ts, payload) FROM STDIN (FORMAT BINARY)

-- name: notify
SELECT pg_notify('sluice_events', %s)

-- name: read_connection_from
SELECT position, connection_id::text, payload::text
FROM events
WHERE connection_id = %(connection_id)s AND position > %(after)s
ORDER BY position
LIMIT %(limit)s

-- name: create_connection
INSERT INTO connections (id, name, daily_limit, retention_hours)
VALUES (%(id)s, %(name)s, %(daily_limit)s, %(retention_hours)s)
