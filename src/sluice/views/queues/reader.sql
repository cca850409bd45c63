-- name: list_queues
-- Queues known from broker samples (agent) or from the finishes of the last 24 h (SDK only):
-- latest depth/consumers, throughput over the last complete minutes, and the wait
-- (sent -> started) of its latest started jobs of the last hour.
-- The distinct queues of the rollups come from a loose index scan (one probe of
-- rollups_queue_idx per queue) rather than from reading a day of rollup rows.
WITH RECURSIVE rolled(name) AS (
    SELECT min(queue) FROM rollups_minute WHERE connection_id = %(connection_id)s
    UNION ALL
    SELECT (SELECT min(r.queue) FROM rollups_minute r
            WHERE r.connection_id = %(connection_id)s AND r.queue > rolled.name)
    FROM rolled WHERE rolled.name IS NOT NULL
),
names AS (
    SELECT name FROM queues WHERE connection_id = %(connection_id)s
    UNION
    SELECT rolled.name FROM rolled
    WHERE rolled.name <> ''
      AND EXISTS (SELECT 1 FROM rollups_minute r
                  WHERE r.connection_id = %(connection_id)s AND r.queue = rolled.name
                    AND r.minute >= now() - interval '24 hours')
)
SELECT n.name, q.depth, q.consumers, q.sampled_at,
       (SELECT coalesce(sum(r.count), 0)
        FROM rollups_minute r
        WHERE r.connection_id = %(connection_id)s AND r.queue = n.name
          AND r.outcome IN ('completed', 'failed', 'cancelled')
          AND r.minute >= date_trunc('minute', now()) - make_interval(mins => %(minutes)s)
          AND r.minute < date_trunc('minute', now())) AS finished_recent,
       wait.p50, wait.p95, wait.workers
FROM names n
LEFT JOIN queues q ON q.connection_id = %(connection_id)s AND q.name = n.name
LEFT JOIN LATERAL (
    SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY s.wait) AS p50,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY s.wait) AS p95,
           count(DISTINCT s.worker) AS workers
    FROM (SELECT greatest(0, extract(epoch FROM p.started_at - p.sent_at)) AS wait, p.worker
          FROM unnest(%(states)s::text[]) AS st(state)
          CROSS JOIN LATERAL (  -- each state's newest (jobs_state_queue_idx), then merged
              SELECT j.first_seen_at, j.job_id, j.started_at, j.sent_at, j.worker
              FROM jobs j
              WHERE j.connection_id = %(connection_id)s AND j.state = st.state
                AND j.queue = n.name AND j.first_seen_at >= now() - interval '1 hour'
                AND j.started_at IS NOT NULL AND j.sent_at IS NOT NULL
              ORDER BY j.first_seen_at DESC, j.job_id DESC
              LIMIT %(wait_sample)s) AS p
          ORDER BY p.first_seen_at DESC, p.job_id DESC
          LIMIT %(wait_sample)s) s
) wait ON true
WHERE %(name)s::text IS NULL OR n.name = %(name)s::text
ORDER BY n.name

-- name: queue_series
-- One row per bucket of the window (empty buckets included): finishes by outcome, mean
-- runtime, and the last sampled depth in the bucket.
WITH buckets AS (
    SELECT b AS start
    FROM generate_series(
        date_bin(%(step)s::interval, now(), 'epoch') - %(window)s::interval + %(step)s::interval,
        date_bin(%(step)s::interval, now(), 'epoch'),
        %(step)s::interval) AS b
),
done AS (
    SELECT date_bin(%(step)s::interval, minute, 'epoch') AS start,
           sum(count) FILTER (WHERE outcome = 'completed') AS completed,
           sum(count) FILTER (WHERE outcome = 'failed') AS failed,
           sum(count) FILTER (WHERE outcome = 'cancelled') AS cancelled,
           sum(count) FILTER (WHERE outcome = 'retrying') AS retried,
           sum(runtime_sum) FILTER (WHERE outcome <> 'retrying') AS runtime_sum
    FROM rollups_minute
    WHERE connection_id = %(connection_id)s AND queue = %(name)s
      AND minute >= date_bin(%(step)s::interval, now(), 'epoch') - %(window)s::interval
    GROUP BY 1
)
SELECT b.start, coalesce(d.completed, 0), coalesce(d.failed, 0), coalesce(d.cancelled, 0),
       coalesce(d.retried, 0),
       d.runtime_sum / nullif(coalesce(d.completed, 0) + coalesce(d.failed, 0)
                              + coalesce(d.cancelled, 0), 0),
       (SELECT s.depth FROM queue_samples s
        WHERE s.connection_id = %(connection_id)s AND s.name = %(name)s
          AND s.sampled_at >= b.start AND s.sampled_at < b.start + %(step)s::interval
        ORDER BY s.sampled_at DESC LIMIT 1)
FROM buckets b
LEFT JOIN done d ON d.start = b.start
ORDER BY b.start
