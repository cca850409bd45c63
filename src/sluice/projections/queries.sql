-- name: job_events
SELECT payload::text
FROM events
WHERE connection_id = %(connection_id)s AND job_id = ANY(%(job_ids)s)
  AND position <= %(upto)s

-- name: job_outcomes
SELECT job_id, outcomes::text
FROM jobs
WHERE connection_id = %(connection_id)s AND job_id = ANY(%(job_ids)s)

-- name: upsert_jobs
INSERT INTO jobs AS j (connection_id, job_id, state, name, queue, routing_key, worker, retries,
                  args, kwargs, result, sent_at, received_at, started_at, finished_at, runtime,
                  exception, traceback, eta, expires, parent_id, root_id, group_id, rejected,
                  first_seen_at, last_event_at, events, position, outcomes)
SELECT %(connection_id)s, u.job_id, u.state, u.name, u.queue, u.routing_key, u.worker, u.retries,
       u.args, u.kwargs, u.result, to_timestamp(u.sent_at), to_timestamp(u.received_at),
       to_timestamp(u.started_at), to_timestamp(u.finished_at), u.runtime, u.exception,
       u.traceback, u.eta, u.expires, u.parent_id, u.root_id, u.group_id, u.rejected,
       to_timestamp(u.first_seen_at), to_timestamp(u.last_event_at), u.events, %(position)s,
       u.outcomes::jsonb
FROM unnest(%(job_id)s::text[], %(state)s::text[], %(name)s::text[], %(queue)s::text[],
            %(routing_key)s::text[], %(worker)s::text[], %(retries)s::int[], %(args)s::text[],
            %(kwargs)s::text[], %(result)s::text[], %(sent_at)s::float8[],
            %(received_at)s::float8[], %(started_at)s::float8[], %(finished_at)s::float8[],
            %(runtime)s::float8[], %(exception)s::text[], %(traceback)s::text[],
            %(eta)s::text[], %(expires)s::text[], %(parent_id)s::text[], %(root_id)s::text[],
            %(group_id)s::text[], %(rejected)s::bool[], %(first_seen_at)s::float8[],
            %(last_event_at)s::float8[], %(events)s::int[], %(outcomes)s::text[])
     AS u(job_id, state, name, queue, routing_key, worker, retries, args, kwargs, result,
          sent_at, received_at, started_at, finished_at, runtime, exception, traceback, eta,
          expires, parent_id, root_id, group_id, rejected, first_seen_at, last_event_at,
          events, outcomes)
ON CONFLICT (connection_id, job_id) DO UPDATE SET
    state = EXCLUDED.state, name = EXCLUDED.name, queue = EXCLUDED.queue,
    routing_key = EXCLUDED.routing_key, worker = EXCLUDED.worker, retries = EXCLUDED.retries,
    args = EXCLUDED.args, kwargs = EXCLUDED.kwargs, result = EXCLUDED.result,
    sent_at = EXCLUDED.sent_at, received_at = EXCLUDED.received_at,
    started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at,
    runtime = EXCLUDED.runtime, exception = EXCLUDED.exception,
    traceback = EXCLUDED.traceback, eta = EXCLUDED.eta, expires = EXCLUDED.expires,
    parent_id = EXCLUDED.parent_id, root_id = EXCLUDED.root_id, group_id = EXCLUDED.group_id,
    rejected = EXCLUDED.rejected, first_seen_at = EXCLUDED.first_seen_at,
    last_event_at = EXCLUDED.last_event_at, events = EXCLUDED.events,
    position = EXCLUDED.position, outcomes = EXCLUDED.outcomes

-- name: delete_transitions
DELETE FROM job_transitions
WHERE connection_id = %(connection_id)s AND job_id = ANY(%(job_ids)s)

-- name: insert_transitions
INSERT INTO job_transitions (connection_id, job_id, seq, state, at, kind, hostname, attempt,
                             dedup_key)
SELECT %(connection_id)s, u.job_id, u.seq, u.state, to_timestamp(u.at), u.kind, u.hostname,
       u.attempt, u.dedup_key
FROM unnest(%(job_id)s::text[], %(seq)s::int[], %(state)s::text[], %(at)s::float8[],
            %(kind)s::text[], %(hostname)s::text[], %(attempt)s::int[], %(dedup_key)s::text[])
     AS u(job_id, seq, state, at, kind, hostname, attempt, dedup_key)

-- name: upsert_rollups
INSERT INTO rollups_minute AS r (connection_id, minute, name, queue, outcome, count,
                                 runtime_sum, runtime_max)
SELECT %(connection_id)s, to_timestamp(u.minute), u.name, u.queue, u.outcome, u.count,
       u.runtime_sum, u.runtime_max
FROM unnest(%(minute)s::float8[], %(name)s::text[], %(queue)s::text[], %(outcome)s::text[],
            %(count)s::bigint[], %(runtime_sum)s::float8[], %(runtime_max)s::float8[])
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
                          processed, loadavg, sw_ident, sw_ver, sw_sys, pid)
SELECT %(connection_id)s, u.hostname, u.status, to_timestamp(u.first_seen_at),
       to_timestamp(u.last_event_at), u.clock, u.dedup_key, to_timestamp(u.last_heartbeat),
       u.freq, u.active, u.processed, u.loadavg::float8[], u.sw_ident, u.sw_ver, u.sw_sys,
       u.pid
FROM unnest(%(hostname)s::text[], %(status)s::text[], %(first_seen_at)s::float8[],
            %(last_event_at)s::float8[], %(clock)s::bigint[], %(dedup_key)s::text[],
            %(last_heartbeat)s::float8[], %(freq)s::float8[], %(active)s::int[],
            %(processed)s::bigint[], %(loadavg)s::text[], %(sw_ident)s::text[],
            %(sw_ver)s::text[], %(sw_sys)s::text[], %(pid)s::int[])
     AS u(hostname, status, first_seen_at, last_event_at, clock, dedup_key, last_heartbeat,
          freq, active, processed, loadavg, sw_ident, sw_ver, sw_sys, pid)
ON CONFLICT (connection_id, hostname) DO UPDATE SET
    status = EXCLUDED.status, last_event_at = EXCLUDED.last_event_at,
    last_event_clock = EXCLUDED.last_event_clock, last_event_key = EXCLUDED.last_event_key,
    freq = EXCLUDED.freq, active = EXCLUDED.active, processed = EXCLUDED.processed,
    loadavg = EXCLUDED.loadavg, sw_ident = EXCLUDED.sw_ident, sw_ver = EXCLUDED.sw_ver,
    sw_sys = EXCLUDED.sw_sys, pid = EXCLUDED.pid
WHERE (EXCLUDED.last_event_at, EXCLUDED.last_event_clock, EXCLUDED.last_event_key)
    > (w.last_event_at, w.last_event_clock, w.last_event_key)

-- name: widen_workers
UPDATE workers AS w
SET first_seen_at = LEAST(w.first_seen_at, to_timestamp(u.first_seen_at)),
    last_heartbeat = GREATEST(w.last_heartbeat, to_timestamp(u.last_heartbeat))
FROM unnest(%(hostname)s::text[], %(first_seen_at)s::float8[], %(last_heartbeat)s::float8[])
     AS u(hostname, first_seen_at, last_heartbeat)
WHERE w.connection_id = %(connection_id)s AND w.hostname = u.hostname

-- name: insert_queue_samples
INSERT INTO queue_samples (connection_id, name, sampled_at, depth, consumers)
SELECT %(connection_id)s, u.name, to_timestamp(u.sampled_at), u.depth, u.consumers
FROM unnest(%(name)s::text[], %(sampled_at)s::float8[], %(depth)s::bigint[],
            %(consumers)s::int[]) AS u(name, sampled_at, depth, consumers)
ON CONFLICT DO NOTHING

-- name: upsert_queues
INSERT INTO queues AS q (connection_id, name, depth, consumers, sampled_at, sample_key)
SELECT %(connection_id)s, u.name, u.depth, u.consumers, to_timestamp(u.sampled_at), u.sample_key
FROM unnest(%(name)s::text[], %(depth)s::bigint[], %(consumers)s::int[],
            %(sampled_at)s::float8[], %(sample_key)s::text[])
     AS u(name, depth, consumers, sampled_at, sample_key)
ON CONFLICT (connection_id, name) DO UPDATE SET
    depth = EXCLUDED.depth, consumers = EXCLUDED.consumers, sampled_at = EXCLUDED.sampled_at,
    sample_key = EXCLUDED.sample_key
WHERE (EXCLUDED.sampled_at, EXCLUDED.sample_key) > (q.sampled_at, q.sample_key)
