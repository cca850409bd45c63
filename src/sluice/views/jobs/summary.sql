-- name: finished_by_name
-- Finished attempts per task name and outcome over the range, from the minute rollups
-- (index-only via rollups_time_idx); minutes ahead of now count (a producer clock ahead).
SELECT name, outcome, sum(count)
FROM rollups_minute
WHERE connection_id = %(connection_id)s AND minute >= now() - %(range)s::interval
GROUP BY name, outcome

-- name: in_flight
-- Jobs first seen in the range that are still unfinished, per state (jobs_state_idx ranges).
SELECT state, count(*)
FROM jobs
WHERE connection_id = %(connection_id)s
  AND state = ANY(ARRAY['queued', 'scheduled', 'active', 'retrying', 'unknown'])
  AND first_seen_at >= now() - %(range)s::interval
GROUP BY state

-- name: series
-- Finishes per bucket over the range, every bucket present (empty ones as zeros).
WITH buckets AS (
    SELECT b AS start
    FROM generate_series(
        date_bin(%(step)s::interval, now(), 'epoch') - %(range)s::interval + %(step)s::interval,
        date_bin(%(step)s::interval, now(), 'epoch'),
        %(step)s::interval) AS b
),
done AS (
    SELECT date_bin(%(step)s::interval, minute, 'epoch') AS start,
           sum(count) FILTER (WHERE outcome = 'completed') AS completed,
           sum(count) FILTER (WHERE outcome = 'failed') AS failed,
           sum(count) FILTER (WHERE outcome = 'cancelled') AS cancelled,
           sum(count) FILTER (WHERE outcome = 'retrying') AS retried
    FROM rollups_minute
    WHERE connection_id = %(connection_id)s
      AND minute >= date_bin(%(step)s::interval, now(), 'epoch') - %(range)s::interval
    GROUP BY 1
)
SELECT b.start, coalesce(d.completed, 0), coalesce(d.failed, 0), coalesce(d.cancelled, 0),
       coalesce(d.retried, 0)
FROM buckets b LEFT JOIN done d ON d.start = b.start
ORDER BY b.start

-- name: timing_percentiles
-- Runtime and queue wait (sent -> started) p50/p95 of the latest completed jobs of the range
-- (a bounded sample: one jobs_state_idx range).
SELECT count(*),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY runtime),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY runtime),
       count(wait),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY wait),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY wait)
FROM (
    SELECT runtime,
           CASE WHEN started_at >= sent_at
                THEN extract(epoch FROM started_at - sent_at)::float8 END AS wait
    FROM jobs
    WHERE connection_id = %(connection_id)s AND state = 'completed'
      AND first_seen_at >= now() - %(range)s::interval
    ORDER BY first_seen_at DESC, job_id DESC
    LIMIT %(sample)s
) AS recent
