-- name: wait_series
-- Queue wait (sent -> started) p50/p95 per bucket of the start time, over the latest started
-- jobs of the queue first seen in the window: each state's newest (jobs_state_queue_idx),
-- merged, bounded by the sample size.
WITH sample AS (
    SELECT p.started_at, greatest(0, extract(epoch FROM p.started_at - p.sent_at)) AS wait
    FROM unnest(%(states)s::text[]) AS st(state)
    CROSS JOIN LATERAL (
        SELECT j.first_seen_at, j.job_id, j.started_at, j.sent_at
        FROM jobs j
        WHERE j.connection_id = %(connection_id)s AND j.state = st.state
          AND j.queue = %(name)s AND j.first_seen_at >= now() - %(window)s::interval
          AND j.started_at IS NOT NULL AND j.sent_at IS NOT NULL
        ORDER BY j.first_seen_at DESC, j.job_id DESC
        LIMIT %(sample)s) AS p
    ORDER BY p.first_seen_at DESC, p.job_id DESC
    LIMIT %(sample)s
)
SELECT date_bin(%(step)s::interval, started_at, 'epoch') AS start, count(*),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY wait),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY wait)
FROM sample
WHERE started_at >= date_bin(%(step)s::interval, now(), 'epoch') - %(window)s::interval
GROUP BY 1
ORDER BY 1
