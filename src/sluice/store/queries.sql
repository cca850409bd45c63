-- name: lock_log
-- One appender at a time, so a follower that has read position N never later finds a
-- committed event below N (the eventsourcing PostgreSQL recorders' discipline).
LOCK TABLE events IN EXCLUSIVE MODE

-- name: next_batch
SELECT nextval('event_batch')

-- name: append_events
INSERT INTO events (connection_id, day, position, batch, dedup_key, kind, job_id, hostname,
                    queue, ts, payload)
SELECT %(connection_id)s, (to_timestamp(e.ts) AT TIME ZONE 'UTC')::date,
       nextval('event_position'), %(batch)s, e.dedup_key, e.kind, e.job_id, e.hostname,
       e.queue, to_timestamp(e.ts), e.payload::jsonb
FROM unnest(%(dedup_keys)s::text[], %(kinds)s::text[], %(job_ids)s::text[],
            %(hostnames)s::text[], %(queues)s::text[], %(ts)s::float8[], %(payloads)s::text[])
     WITH ORDINALITY AS e(dedup_key, kind, job_id, hostname, queue, ts, payload, ord)
ORDER BY e.ord
ON CONFLICT DO NOTHING
RETURNING position, dedup_key

-- name: notify
SELECT pg_notify('sluice_events', %s)

-- name: read_from
SELECT position, connection_id::text, payload::text
FROM events
WHERE position > %(after)s
ORDER BY position
LIMIT %(limit)s

-- name: read_connection_from
SELECT position, connection_id::text, payload::text
FROM events
WHERE connection_id = %(connection_id)s AND position > %(after)s
ORDER BY position
LIMIT %(limit)s

-- name: last_position
SELECT coalesce(max(position), 0) FROM events

-- name: create_connection
INSERT INTO connections (id, name, daily_limit, retention_hours)
VALUES (%(id)s, %(name)s, %(daily_limit)s, %(retention_hours)s)
