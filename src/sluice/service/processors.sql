-- Statements of the tracked processor runner (sluice.service.processors).

-- name: claim_position
-- A processor's tracking row for a connection, created at 0 when it has none yet, so that
-- `lock_position` always finds a row to lock (two first pages cannot both pass).
INSERT INTO tracking (connection_id, processor, position)
VALUES (%(connection_id)s, %(processor)s, 0)
ON CONFLICT (connection_id, processor) DO NOTHING

-- name: lock_position
-- The recorded position, its row locked to commit: a rival runner's page waits here, then
-- reads the position this one committed.
SELECT position FROM tracking
WHERE connection_id = %(connection_id)s AND processor = %(processor)s
FOR UPDATE

-- name: try_lock
SELECT pg_try_advisory_lock(%(key)s)

-- name: unlock
SELECT pg_advisory_unlock(%(key)s)
