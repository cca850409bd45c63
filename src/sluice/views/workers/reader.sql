-- name: list_workers
-- A worker row plus what its recent jobs tell: finishes in the last 5 minutes (tasks per
-- minute) and the queues of its latest jobs (queues consumed).
SELECT w.hostname, w.status, w.first_seen_at, w.last_event_at, w.last_heartbeat,
       w.last_received_at, w.freq,
       w.active, w.processed, w.loadavg, w.sw_ident, w.sw_ver, w.sw_sys, w.pid, now() AS now,
       (SELECT count(*)
        FROM jobs j
        WHERE j.connection_id = w.connection_id AND j.worker = w.hostname
          AND j.finished_at IS NOT NULL
          AND j.finished_at >= now() - make_interval(mins => %(tpm_minutes)s)) AS finished_recent,
       (SELECT coalesce(array_agg(DISTINCT r.queue ORDER BY r.queue), '{}')
        FROM (SELECT j.queue
              FROM jobs j
              WHERE j.connection_id = w.connection_id AND j.worker = w.hostname
              ORDER BY j.first_seen_at DESC, j.job_id DESC
              LIMIT %(queue_sample)s) r
        WHERE r.queue IS NOT NULL) AS queues
FROM workers w
WHERE w.connection_id = %(connection_id)s
  AND (%(hostname)s::text IS NULL OR w.hostname = %(hostname)s::text)
ORDER BY w.hostname
