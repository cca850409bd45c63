-- name: last_event
-- The database's time (the clock ingested_at is on), and when the connection's latest
-- traffic event was stored: one backward probe of each daily partition's primary key.
SELECT now(),
       (SELECT extract(epoch FROM ingested_at)::float8
        FROM events
        WHERE connection_id = %(connection_id)s
        ORDER BY position DESC
        LIMIT 1)

-- name: observations
-- What the window says, as one JSON object (domain.health.Observations' fields). Bounded:
-- the newest %(sample)s events of the connection (a backward primary-key scan of the recent
-- partitions), of which those stored within the window; their payloads are parsed once.
WITH newest AS (
    SELECT kind, job_id, hostname, ts, ingested_at, payload
    FROM events
    WHERE connection_id = %(connection_id)s AND day >= %(since_day)s
    ORDER BY position DESC
    LIMIT %(sample)s
), recent AS MATERIALIZED (
    SELECT kind, job_id, hostname, ts, ingested_at, payload::jsonb AS p
    FROM newest
    WHERE ingested_at >= %(since)s
), sources AS (
    SELECT coalesce(p->>'source', p->'extensions'->>'source', 'unknown') AS source,
           count(*) AS events,
           count(*) FILTER (WHERE kind IN ('job.sent', 'job.received', 'job.succeeded'))
               AS carrying,
           count(*) FILTER (WHERE kind IN ('job.sent', 'job.received', 'job.succeeded')
                              AND p ?| array['args', 'kwargs', 'result']) AS with_values
    FROM recent
    GROUP BY 1
), beats AS (
    SELECT hostname,
           count(*) AS heartbeats,
           (array_agg((p->>'processed')::bigint ORDER BY ts)
               FILTER (WHERE p ? 'processed'))[1] AS processed_first,
           (array_agg((p->>'processed')::bigint ORDER BY ts DESC)
               FILTER (WHERE p ? 'processed'))[1] AS processed_last
    FROM recent
    WHERE kind IN ('worker.online', 'worker.heartbeat') AND hostname IS NOT NULL
    GROUP BY hostname
    ORDER BY hostname
    LIMIT %(max_hosts)s
), tasks AS (
    -- a worker's own task events: every job kind but job.sent (which names the producer)
    SELECT hostname, count(*) AS task_events
    FROM recent
    WHERE kind LIKE 'job.%%' AND kind <> 'job.sent' AND hostname IS NOT NULL
    GROUP BY hostname
), worker_rows AS (
    SELECT b.hostname, b.heartbeats, b.processed_first, b.processed_last,
           coalesce(t.task_events, 0) AS task_events,
           EXISTS (SELECT 1 FROM jobs j
                   WHERE j.connection_id = %(connection_id)s
                     AND j.worker = b.hostname COLLATE "C") AS jobs_recorded
    FROM beats b LEFT JOIN tasks t USING (hostname)
), received AS (
    SELECT job_id, min(ts) AS at, min(hostname) AS worker
    FROM recent WHERE kind = 'job.received' AND job_id IS NOT NULL
    GROUP BY job_id
    LIMIT %(max_jobs)s
), sent AS (
    SELECT job_id, min(ts) AS at, min(hostname) AS producer
    FROM recent WHERE kind = 'job.sent' AND job_id IS NOT NULL
    GROUP BY job_id
), pairs AS (
    SELECT s.producer, r.worker, count(*) AS jobs,
           percentile_cont(0.5) WITHIN GROUP (
               ORDER BY extract(epoch FROM r.at - s.at)::float8) AS median_s,
           min(extract(epoch FROM r.at - s.at))::float8 AS min_s
    FROM received r JOIN sent s USING (job_id)
    GROUP BY s.producer, r.worker
    ORDER BY median_s
    LIMIT %(max_hosts)s
), unsent AS (
    -- received jobs whose row has no sent time: no task-sent ever arrived for them, in the
    -- window or before it
    SELECT count(*) AS received_jobs, count(*) FILTER (WHERE j.sent_at IS NULL) AS unsent_jobs
    FROM received r
    LEFT JOIN jobs j ON j.connection_id = %(connection_id)s AND j.job_id = r.job_id COLLATE "C"
), ahead AS (
    SELECT hostname, count(*) AS events,
           max(extract(epoch FROM ts - ingested_at))::float8 AS ahead_s
    FROM recent
    WHERE hostname IS NOT NULL
    GROUP BY hostname
    ORDER BY ahead_s DESC
    LIMIT %(max_hosts)s
)
SELECT json_build_object(
    'events', (SELECT count(*) FROM recent),
    'capped', (SELECT count(*) FROM newest) >= %(sample)s
              AND (SELECT min(ingested_at) FROM newest) >= %(since)s,
    'received_jobs', (SELECT received_jobs FROM unsent),
    'unsent_jobs', (SELECT unsent_jobs FROM unsent),
    'sent_events', (SELECT count(*) FROM recent WHERE kind = 'job.sent'),
    'sources', coalesce((SELECT json_agg(s ORDER BY s.source) FROM sources s), '[]'),
    'workers', coalesce((SELECT json_agg(w ORDER BY w.hostname) FROM worker_rows w), '[]'),
    'pairs', coalesce((SELECT json_agg(p ORDER BY p.median_s) FROM pairs p), '[]'),
    'ahead', coalesce((SELECT json_agg(a ORDER BY a.ahead_s DESC) FROM ahead a), '[]')
)::text
