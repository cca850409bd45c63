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
COPY jobs (connection_id, job_id, state, name, queue, routing_key, worker, retries, args,
           kwargs, result, sent_at, received_at, started_at, finished_at, runtime, exception,
           traceback, eta, expires, parent_id, root_id, group_id, rejected, first_seen_at,
           last_event_at, events, outcomes, fold, history) FROM STDIN (FORMAT BINARY)

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

-- name: upsert_workers
-- Worker columns come from its latest event, ordered by (source time, clock, dedup key), so the
-- row is the same whatever order the events arrive in; first seen / last heartbeat follow.
INSERT INTO workers AS w (connection_id, hostname, status, first_seen_at, last_event_at,
                          last_event_clock, last_event_key, last_heartbeat, freq, active,
                          processed, loadavg, sw_ident, sw_ver, sw_sys, pid, last_received_at)
SELECT %(connection_id)s, u.hostname, u.status, to_timestamp(u.first_seen_at),
       to_timestamp(u.last_event_at), u.clock, u.dedup_key, to_timestamp(u.last_heartbeat),
       u.freq, u.active, u.processed, u.loadavg::float8[], u.sw_ident, u.sw_ver, u.sw_sys,
       u.pid, coalesce(%(received_at)s::timestamptz, now())
FROM unnest(%(hostname)b::text[], %(status)b::text[], %(first_seen_at)b::float8[],
            %(last_event_at)b::float8[], %(clock)b::bigint[], %(dedup_key)b::text[],
            %(last_heartbeat)b::float8[], %(freq)b::float8[], %(active)b::int[],
            %(processed)b::bigint[], %(loadavg)b::text[], %(sw_ident)b::text[],
            %(sw_ver)b::text[], %(sw_sys)b::text[], %(pid)b::int[])
     AS u(hostname, status, first_seen_at, last_event_at, clock, dedup_key, last_heartbeat,
          freq, active, processed, loadavg, sw_ident, sw_ver, sw_sys, pid)
ON CONFLICT (connection_id, hostname) DO UPDATE SET
    status = EXCLUDED.status, last_event_at = EXCLUDED.last_event_at,
    last_event_clock = EXCLUDED.last_event_clock, last_event_key = EXCLUDED.last_event_key,
    freq = EXCLUDED.freq, active = EXCLUDED.active, processed = EXCLUDED.processed,
    loadavg = EXCLUDED.loadavg, sw_ident = EXCLUDED.sw_ident, sw_ver = EXCLUDED.sw_ver,
    sw_sys = EXCLUDED.sw_sys, pid = EXCLUDED.pid, last_received_at = EXCLUDED.last_received_at
WHERE (EXCLUDED.last_event_at, EXCLUDED.last_event_clock, EXCLUDED.last_event_key)
    > (w.last_event_at, w.last_event_clock, w.last_event_key)

-- name: widen_workers
UPDATE workers AS w
SET first_seen_at = LEAST(w.first_seen_at, to_timestamp(u.first_seen_at)),
    last_heartbeat = GREATEST(w.last_heartbeat, to_timestamp(u.last_heartbeat))
FROM unnest(%(hostname)b::text[], %(first_seen_at)b::float8[], %(last_heartbeat)b::float8[])
     AS u(hostname, first_seen_at, last_heartbeat)
WHERE w.connection_id = %(connection_id)s AND w.hostname = u.hostname

-- name: insert_queue_samples
INSERT INTO queue_samples (connection_id, name, sampled_at, depth, consumers)
SELECT %(connection_id)s, u.name, to_timestamp(u.sampled_at), u.depth, u.consumers
FROM unnest(%(name)b::text[], %(sampled_at)b::float8[], %(depth)b::bigint[],
            %(consumers)b::int[]) AS u(name, sampled_at, depth, consumers)
ON CONFLICT DO NOTHING

-- name: upsert_queues
INSERT INTO queues AS q (connection_id, name, depth, consumers, sampled_at, sample_key)
SELECT %(connection_id)s, u.name, u.depth, u.consumers, to_timestamp(u.sampled_at), u.sample_key
FROM unnest(%(name)b::text[], %(depth)b::bigint[], %(consumers)b::int[],
            %(sampled_at)b::float8[], %(sample_key)b::text[])
     AS u(name, depth, consumers, sampled_at, sample_key)
ON CONFLICT (connection_id, name) DO UPDATE SET
    depth = EXCLUDED.depth, consumers = EXCLUDED.consumers, sampled_at = EXCLUDED.sampled_at,
    sample_key = EXCLUDED.sample_key
WHERE (EXCLUDED.sampled_at, EXCLUDED.sample_key) > (q.sampled_at, q.sample_key)
