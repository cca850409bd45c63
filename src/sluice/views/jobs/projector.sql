-- name: lock_jobs
-- Transaction-scoped locks per job, taken in one global order (no deadlocks), covering jobs
-- that have no row yet.
SELECT count(pg_advisory_xact_lock(h))
FROM (SELECT DISTINCT hashtextextended(%(connection_id)s || ':' || u.job_id, 0) AS h
      FROM json_array_elements_text(%(job_ids)s::json) AS u(job_id)
      ORDER BY 1) AS locks

-- name: try_lock_jobs
-- lock_jobs without waiting: takes the locks that are free, answers the jobs whose lock
-- another append holds. Hash order, as lock_jobs, though nothing here waits.
SELECT u.job_id
FROM (SELECT hashtextextended(%(connection_id)s || ':' || j.job_id, 0) AS h, j.job_id
      FROM json_array_elements_text(%(job_ids)s::json) AS j(job_id)
      ORDER BY 1) AS u
WHERE NOT pg_try_advisory_xact_lock(u.h)

-- name: take_job_folds
-- The rows about to be rewritten, deleted as they are read (one primary-key probe per job, and
-- delete + COPY costs less than INSERT .. ON CONFLICT UPDATE). The job locks make this and the
-- COPY atomic for other projectors; readers see the old rows until commit.
DELETE FROM jobs
WHERE connection_id = %(connection_id)s
  AND job_id = ANY(ARRAY(SELECT json_array_elements_text(%(job_ids)s::json)))
RETURNING job_id, outcomes::text, fold

-- name: copy_jobs
-- Its column slot takes the job row's columns, as row.py declares them.
COPY jobs ({columns}) FROM STDIN (FORMAT BINARY)

-- name: upsert_rollups
INSERT INTO rollups_minute AS r (connection_id, minute, name, queue, outcome, count,
                                 runtime_sum, runtime_max)
SELECT %(connection_id)s, to_timestamp(u.minute), u.name, u.queue, u.outcome, u.count,
       u.runtime_sum, u.runtime_max
FROM unnest(%(minute)b::float8[], %(name)b::text[], %(queue)b::text[], %(outcome)b::text[],
            %(count)b::bigint[], %(runtime_sum)b::float8[], %(runtime_max)b::float8[])
     AS u(minute, name, queue, outcome, count, runtime_sum, runtime_max)
ON CONFLICT (connection_id, minute, name, queue, outcome) DO UPDATE SET
    count = r.count + EXCLUDED.count,
    runtime_sum = r.runtime_sum + EXCLUDED.runtime_sum,
    runtime_max = GREATEST(r.runtime_max, EXCLUDED.runtime_max)

-- name: delete_empty_rollups
DELETE FROM rollups_minute
WHERE connection_id = %(connection_id)s AND minute = ANY(%(minutes)s::timestamptz[])
  AND count <= 0
