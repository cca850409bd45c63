-- name: create_connection
INSERT INTO connections (id, name, daily_limit, retention_hours, broker_url, result_backend_url)
VALUES (%(id)s, %(name)s, %(daily_limit)s, %(retention_hours)s, %(broker_url)s,
        %(result_backend_url)s)

-- name: list_connections
SELECT c.id::text AS id, c.name, c.created_at, c.daily_limit, c.retention_hours,
       c.capture_args, coalesce(u.accepted, 0) AS accepted_today,
       (SELECT count(*) FROM api_keys k
        WHERE k.connection_id = c.id AND k.revoked_at IS NULL) AS active_keys
FROM connections c
LEFT JOIN usage_daily u ON u.connection_id = c.id AND u.day = %(today)s
ORDER BY c.created_at, c.id

-- name: find_by_name
SELECT id::text FROM connections WHERE name = %(name)s

-- name: get_connection
SELECT id::text AS id, name, created_at, daily_limit, retention_hours, capture_args
FROM connections WHERE id = %(id)s

-- name: set_daily_limit
UPDATE connections SET daily_limit = %(daily_limit)s WHERE id = %(id)s

-- name: set_retention_hours
UPDATE connections SET retention_hours = %(retention_hours)s WHERE id = %(id)s

-- name: set_capture_args
UPDATE connections SET capture_args = %(capture_args)s WHERE id = %(id)s

-- name: ingest_settings
-- What every ingested batch needs of its connection, in one probe of the primary key.
SELECT daily_limit IS NOT NULL, capture_args FROM connections WHERE id = %(id)s

-- name: get_broker
SELECT broker_url, result_backend_url, executor_seen_at FROM connections WHERE id = %(id)s

-- name: set_broker_url
UPDATE connections SET broker_url = %(url)s WHERE id = %(id)s

-- name: set_result_backend_url
UPDATE connections SET result_backend_url = %(url)s WHERE id = %(id)s

-- name: executor_seen
-- At most one write a second per connection, however often executors poll.
UPDATE connections SET executor_seen_at = now()
WHERE id = %(id)s AND (executor_seen_at IS NULL OR executor_seen_at < now() - interval '1 second')
