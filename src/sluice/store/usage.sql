-- name: lock_usage
-- Creates or row-locks today's counter in one round trip (the no-op update takes the lock,
-- held to commit: concurrent batches of one connection reserve quota one at a time).
INSERT INTO usage_daily AS u (connection_id, day) VALUES (%(connection_id)s, %(day)s)
ON CONFLICT (connection_id, day) DO UPDATE SET accepted = u.accepted
RETURNING u.accepted, (SELECT daily_limit FROM connections WHERE id = %(connection_id)s)

-- name: daily_limit
SELECT daily_limit FROM connections WHERE id = %(connection_id)s

-- name: add_usage
INSERT INTO usage_daily AS u (connection_id, day, accepted)
VALUES (%(connection_id)s, %(day)s, %(n)s)
ON CONFLICT (connection_id, day) DO UPDATE SET accepted = u.accepted + EXCLUDED.accepted

-- name: usage
SELECT coalesce((SELECT accepted FROM usage_daily
                 WHERE connection_id = %(connection_id)s AND day = %(day)s), 0)

-- name: delete_usage
DELETE FROM usage_daily WHERE day < %(before)s
