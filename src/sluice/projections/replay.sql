-- name: truncate_read_models
TRUNCATE jobs, workers, queues, queue_samples, rollups_minute

-- name: count_events
SELECT count(*) FROM events

-- name: connections
SELECT DISTINCT connection_id::text FROM events ORDER BY 1

-- name: stream_log
-- A connection's read models depend on its own events only: replay connection by connection.
SELECT batch, position, connection_id::text, payload::text, ingested_at, dedup_key, job_id,
       hostname, queue
FROM events
WHERE connection_id = %(connection_id)s
ORDER BY position
