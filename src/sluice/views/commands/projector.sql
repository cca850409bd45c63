-- name: upsert_commands
-- One statement for a batch (rows: a JSON array, one merged row per command, in key order).
-- The same merge as projector._merge: first non-null wins, the status only moves forward, the
-- latest claim wins.
INSERT INTO commands AS c (
    connection_id, command_id, action, status, job_id, hostname, queue, task_name, bulk_id,
    total, params, requested_by, requested_at, claims, claimed_by, claimed_at, reason,
    new_job_id, result, finished_at)
SELECT %(connection_id)s, r.command_id, r.action, r.status, r.job_id, r.hostname, r.queue,
       r.task_name, r.bulk_id, r.total, r.params, r.requested_by, r.requested_at, r.claims,
       r.claimed_by, r.claimed_at, r.reason, r.new_job_id, r.result, r.finished_at
FROM json_to_recordset(%(rows)s::json) AS r(
    command_id text, action text, status text, job_id text, hostname text, queue text,
    task_name text, bulk_id text, total integer, params json, requested_by text,
    requested_at timestamptz, claims integer, claimed_by text, claimed_at timestamptz,
    reason text, new_job_id text, result json, finished_at timestamptz)
ON CONFLICT (connection_id, command_id) DO UPDATE SET
    action = coalesce(c.action, EXCLUDED.action),
    status = CASE WHEN (CASE EXCLUDED.status WHEN 'requested' THEN 0 WHEN 'running' THEN 1
                                             ELSE 2 END)
                     > (CASE c.status WHEN 'requested' THEN 0 WHEN 'running' THEN 1
                                      ELSE 2 END)
                  THEN EXCLUDED.status ELSE c.status END,
    job_id = coalesce(c.job_id, EXCLUDED.job_id),
    hostname = coalesce(c.hostname, EXCLUDED.hostname),
    queue = coalesce(c.queue, EXCLUDED.queue),
    task_name = coalesce(c.task_name, EXCLUDED.task_name),
    bulk_id = coalesce(c.bulk_id, EXCLUDED.bulk_id),
    total = coalesce(c.total, EXCLUDED.total),
    params = coalesce(c.params, EXCLUDED.params),
    requested_by = coalesce(c.requested_by, EXCLUDED.requested_by),
    requested_at = coalesce(c.requested_at, EXCLUDED.requested_at),
    claims = greatest(c.claims, EXCLUDED.claims),
    claimed_by = CASE WHEN EXCLUDED.claims > c.claims THEN EXCLUDED.claimed_by
                      ELSE c.claimed_by END,
    claimed_at = CASE WHEN EXCLUDED.claims > c.claims THEN EXCLUDED.claimed_at
                      ELSE c.claimed_at END,
    reason = coalesce(c.reason, EXCLUDED.reason),
    new_job_id = coalesce(c.new_job_id, EXCLUDED.new_job_id),
    result = coalesce(c.result, EXCLUDED.result),
    finished_at = coalesce(c.finished_at, EXCLUDED.finished_at)
