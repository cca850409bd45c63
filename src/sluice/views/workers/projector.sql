-- name: upsert_workers
-- Worker columns come from its latest event, ordered by (source time, clock, dedup key), so the
-- row is the same whatever order the events arrive in; first seen / last heartbeat follow.
INSERT INTO workers AS w (connection_id, hostname, status, first_seen_at, last_event_at,
                          last_event_clock, last_event_key, last_heartbeat, freq, active,
                          processed, loadavg, sw_ident, sw_ver, sw_sys, pid, last_received_at)
SELECT %(connection_id)s, u.hostname, u.status, to_timestamp(u.first_seen_at),
       to_timestamp(u.last_event_at), u.clock, u.dedup_key, to_timestamp(u.last_heartbeat),
       u.freq, u.active, u.processed, u.loadavg::float8[], u.sw_ident, u.sw_ver, u.sw_sys,
       u.pid, coalesce(u.received_at, now())
FROM unnest(%(hostname)b::text[], %(status)b::text[], %(first_seen_at)b::float8[],
            %(last_event_at)b::float8[], %(clock)b::bigint[], %(dedup_key)b::text[],
            %(last_heartbeat)b::float8[], %(freq)b::float8[], %(active)b::int[],
            %(processed)b::bigint[], %(loadavg)b::text[], %(sw_ident)b::text[],
            %(sw_ver)b::text[], %(sw_sys)b::text[], %(pid)b::int[],
            %(received_at)s::timestamptz[])
     AS u(hostname, status, first_seen_at, last_event_at, clock, dedup_key, last_heartbeat,
          freq, active, processed, loadavg, sw_ident, sw_ver, sw_sys, pid, received_at)
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
