-- name: db_now
SELECT now()

-- name: finished_between
-- Finished attempts per task name and outcome in [start, end), from the minute rollups
-- (index-only via rollups_time_idx).
SELECT name, outcome, sum(count)
FROM rollups_minute
WHERE connection_id = %(connection_id)s AND minute >= %(start)s AND minute < %(end)s
GROUP BY name, outcome

-- name: finished_by_hour
-- The same per whole hour, for the closed hours the overview caches.
SELECT date_trunc('hour', minute), name, outcome, sum(count)
FROM rollups_minute
WHERE connection_id = %(connection_id)s AND minute >= %(start)s AND minute < %(end)s
GROUP BY 1, name, outcome

-- name: in_flight_counts
-- Jobs first seen in the last hour / day that are still in an unfinished state.
SELECT state,
       count(*) FILTER (WHERE first_seen_at >= now() - interval '1 hour'),
       count(*)
FROM jobs
WHERE connection_id = %(connection_id)s
  AND state = ANY(ARRAY['queued', 'scheduled', 'active', 'retrying', 'unknown'])
  AND first_seen_at >= now() - interval '24 hours'
GROUP BY state

-- name: throughput_series
WITH done AS (
    SELECT minute,
           sum(count) FILTER (WHERE outcome = 'completed') AS completed,
           sum(count) FILTER (WHERE outcome = 'failed') AS failed,
           sum(count) FILTER (WHERE outcome = 'cancelled') AS cancelled,
           sum(count) FILTER (WHERE outcome = 'retrying') AS retried
    FROM rollups_minute
    WHERE connection_id = %(connection_id)s
      AND minute >= date_trunc('minute', now()) - make_interval(mins => %(minutes)s - 1)
    GROUP BY minute
)
SELECT b, coalesce(d.completed, 0), coalesce(d.failed, 0), coalesce(d.cancelled, 0),
       coalesce(d.retried, 0)
FROM generate_series(date_trunc('minute', now()) - make_interval(mins => %(minutes)s - 1),
                     date_trunc('minute', now()), interval '1 minute') AS b
LEFT JOIN done d ON d.minute = b
ORDER BY b
