-- name: lock_usage
-- Creates or row-locks today's counter in one round trip (the no-op update takes the lock,
-- held to commit: concurrent batches of one connection reserve quota one at a time).
INSERT INTO usage_daily AS u (connection_id, day) VALUES (%(connection_id)s, %(day)s)
ON CONFLICT (connection_id, day) DO UPDATE SET accepted = u.accepted
RETURNING u.accepted, (SELECT daily_limit FROM connections WHERE id = %(connection_id)s)

-- name: add_usage
UPDATE usage_daily SET accepted = accepted + %(n)s
WHERE connection_id = %(connection_id)s AND day = %(day)s

-- name: usage
SELECT coalesce((SELECT accepted FROM usage_daily
                 WHERE connection_id = %(connection_id)s AND day = %(day)s), 0)

-- name: stored_keys
-- Which of these events are already in the log (the unique key is connection, day, dedup key).
SELECT day, dedup_key FROM events
WHERE connection_id = %(connection_id)s AND day = ANY(%(days)s::date[])
  AND dedup_key = ANY(%(keys)s::text[])
