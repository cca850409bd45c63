-- Statements over a tracking table ({table}: `tracking`, or a rebuild's own, unlogged like
-- the shadow tables it tracks).

-- name: position
SELECT position FROM {table}
WHERE connection_id = %(connection_id)s AND processor = %(processor)s

-- name: record
-- Forward only: no row comes back when the recorded position is not behind this one.
INSERT INTO {table} AS t (connection_id, processor, position)
VALUES (%(connection_id)s, %(processor)s, %(position)s)
ON CONFLICT (connection_id, processor) DO UPDATE
    SET position = EXCLUDED.position, updated_at = now()
    WHERE t.position < EXCLUDED.position
RETURNING t.position
