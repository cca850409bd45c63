-- name: finished_by_name
-- One pass over the last day's minute rollups (index-only via rollups_cover_idx): finished
-- attempts per task name and outcome, for the last hour and the last day. Python sums them
-- into the per-outcome counts and picks the top failing names.
SELECT name, outcome,
       coalesce(sum(count) FILTER (WHERE minute >= now() - interval '1 hour'), 0),
       sum(count)
FROM rollups_minute
WHERE connection_id = %(connection_id)s AND minute >= now() - interval '24 hours'
GROUP BY name, outcome

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
