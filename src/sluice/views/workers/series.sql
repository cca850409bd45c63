-- name: worker_series
-- A worker's finishes per bucket over the window (completed, failed) and their mean runtime,
-- from its jobs (jobs_worker_finished_idx), every bucket present.
WITH buckets AS (
    SELECT b AS start
    FROM generate_series(
        date_bin(%(step)s::interval, now(), 'epoch') - %(window)s::interval + %(step)s::interval,
        date_bin(%(step)s::interval, now(), 'epoch'),
        %(step)s::interval) AS b
),
done AS (
    SELECT date_bin(%(step)s::interval, finished_at, 'epoch') AS start,
           count(*) FILTER (WHERE state = 'completed') AS completed,
           count(*) FILTER (WHERE state = 'failed') AS failed,
           avg(runtime) AS runtime_avg
    FROM jobs
    WHERE connection_id = %(connection_id)s AND worker = %(hostname)s
      AND finished_at IS NOT NULL
      AND finished_at >= date_bin(%(step)s::interval, now(), 'epoch') - %(window)s::interval
    GROUP BY 1
)
SELECT b.start, coalesce(d.completed, 0), coalesce(d.failed, 0), d.runtime_avg
FROM buckets b LEFT JOIN done d ON d.start = b.start
ORDER BY b.start
