-- Statements of the commands service (sluice.service.commands) and its executor.
-- A spec row: the command's columns, then its job's (service.commands.specs_of).

-- name: lock_requested
SELECT c.command_id, c.action, c.job_id, c.hostname, c.queue, c.task_name, c.params::text,
       c.bulk_id, j.name, j.queue, j.routing_key, j.args, j.kwargs
FROM commands AS c
LEFT JOIN jobs AS j ON j.connection_id = c.connection_id AND j.job_id = c.job_id
WHERE c.connection_id = %(connection_id)s AND c.command_id = ANY(%(ids)s::text[])
  AND c.status = 'requested' AND c.total IS NULL
ORDER BY c.command_id
FOR UPDATE OF c

-- name: lock_requested_skip
SELECT c.command_id, c.action, c.job_id, c.hostname, c.queue, c.task_name, c.params::text,
       c.bulk_id, j.name, j.queue, j.routing_key, j.args, j.kwargs
FROM commands AS c
LEFT JOIN jobs AS j ON j.connection_id = c.connection_id AND j.job_id = c.job_id
WHERE c.connection_id = %(connection_id)s AND c.command_id = ANY(%(ids)s::text[])
  AND c.status = 'requested' AND c.total IS NULL
ORDER BY c.command_id
FOR UPDATE OF c SKIP LOCKED

-- name: lock_open
-- Commands not finished yet (an agent's report), locked to commit.
SELECT c.command_id, c.action, c.job_id, c.hostname, c.queue, c.task_name, c.params::text,
       c.bulk_id, j.name, j.queue, j.routing_key, j.args, j.kwargs
FROM commands AS c
LEFT JOIN jobs AS j ON j.connection_id = c.connection_id AND j.job_id = c.job_id
WHERE c.connection_id = %(connection_id)s AND c.command_id = ANY(%(ids)s::text[])
  AND c.status IN ('requested', 'running') AND c.total IS NULL
ORDER BY c.command_id
FOR UPDATE OF c

-- name: claim
-- An agent executor's claim: the oldest open commands, skipping those another executor is
-- handling right now; a claim older than the lease is handed out again.
SELECT c.command_id, c.action, c.job_id, c.hostname, c.queue, c.task_name, c.params::text,
       c.bulk_id, j.name, j.queue, j.routing_key, j.args, j.kwargs, c.claims
FROM commands AS c
LEFT JOIN jobs AS j ON j.connection_id = c.connection_id AND j.job_id = c.job_id
WHERE c.connection_id = %(connection_id)s AND c.total IS NULL
  AND (c.status = 'requested'
       OR (c.status = 'running'
           AND c.claimed_at < now() - make_interval(secs => %(lease_s)s)))
ORDER BY c.requested_at, c.command_id
LIMIT %(limit)s
FOR UPDATE OF c SKIP LOCKED

-- name: bulk_state
-- A bulk action's status and total, and how many of its jobs finished each way.
SELECT b.status, b.total,
       (SELECT count(*) FROM commands AS s WHERE s.connection_id = b.connection_id
          AND s.bulk_id = b.command_id AND s.status = 'succeeded'),
       (SELECT count(*) FROM commands AS f WHERE f.connection_id = b.connection_id
          AND f.bulk_id = b.command_id AND f.status = 'failed')
FROM commands AS b
WHERE b.connection_id = %(connection_id)s AND b.command_id = %(bulk_id)s

-- name: stale_requested
-- Commands still waiting long after they were asked (e.g. the broker was set only later) on
-- connections the server can act on.
SELECT c.connection_id::text, c.command_id
FROM commands AS c
JOIN connections AS k ON k.id = c.connection_id
WHERE c.status = 'requested' AND c.total IS NULL AND k.broker_url IS NOT NULL
  AND c.requested_at < now() - make_interval(secs => %(age_s)s)
ORDER BY c.requested_at
LIMIT %(limit)s

-- name: open_bulks
-- Bulk actions without an outcome whose jobs are all done (their last job's executor could
-- not tell: e.g. two executors finished the last two at once).
SELECT b.connection_id::text, b.command_id, b.total,
       count(*) FILTER (WHERE c.status = 'failed') AS failed
FROM commands AS b
JOIN commands AS c ON c.connection_id = b.connection_id AND c.bulk_id = b.command_id
WHERE b.total IS NOT NULL AND b.status IN ('requested', 'running')
  AND b.requested_at < now() - make_interval(secs => %(age_s)s)
GROUP BY b.connection_id, b.command_id, b.total
HAVING count(*) FILTER (WHERE c.status IN ('succeeded', 'failed')) >= b.total

-- name: active_revokes
-- Revokes a worker that comes online must hear again: their job has not ended (a revoked
-- task that is discarded or never runs ends `cancelled`).
SELECT c.command_id, c.job_id, c.params::text, j.expires
FROM commands AS c
LEFT JOIN jobs AS j ON j.connection_id = c.connection_id AND j.job_id = c.job_id
WHERE c.connection_id = %(connection_id)s AND c.action = 'revoke' AND c.status = 'succeeded'
  AND c.finished_at > now() - make_interval(secs => %(horizon_s)s)
  AND (j.state IS NULL OR j.state NOT IN ('completed', 'failed', 'cancelled'))
ORDER BY c.finished_at
LIMIT %(limit)s
