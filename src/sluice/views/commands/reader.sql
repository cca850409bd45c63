-- Command reads. `list_commands` carries a {filters} slot filled only with the static f_*
-- fragments below (never user text).


-- name: get_command
SELECT command_id, action, status, job_id, hostname, queue, task_name, bulk_id, total,
       params::text, requested_by, requested_at, claimed_by, reason, new_job_id, result::text,
       finished_at
FROM commands
WHERE connection_id = %(connection_id)s AND command_id = %(command_id)s

-- name: list_commands
SELECT command_id, action, status, job_id, hostname, queue, task_name, bulk_id, total,
       params::text, requested_by, requested_at, claimed_by, reason, new_job_id, result::text,
       finished_at
FROM commands
WHERE connection_id = %(connection_id)s {filters}
ORDER BY requested_at DESC, command_id DESC
LIMIT %(limit)s

-- name: f_top
AND bulk_id IS NULL

-- name: f_bulk
AND bulk_id = %(bulk_id)s

-- name: f_action
AND action = %(action)s

-- name: f_status
AND status = ANY(%(statuses)s::text[])

-- name: f_job
AND (job_id = %(job_id)s OR new_job_id = %(job_id)s)

-- name: f_since
AND requested_at >= %(since)s

-- name: f_until
AND requested_at < %(until)s

-- name: f_cursor
AND (requested_at, command_id) < (%(cursor_at)s, %(cursor_id)s)

-- name: bulk_progress
SELECT status, count(*) FROM commands
WHERE connection_id = %(connection_id)s AND bulk_id = %(bulk_id)s
GROUP BY status

-- name: job_commands
-- A job's commands: those about it, and the retry that created it.
SELECT command_id, action, status, job_id, hostname, queue, task_name, bulk_id, total,
       params::text, requested_by, requested_at, claimed_by, reason, new_job_id, result::text,
       finished_at
FROM commands
WHERE connection_id = %(connection_id)s AND job_id = %(job_id)s
UNION
SELECT command_id, action, status, job_id, hostname, queue, task_name, bulk_id, total,
       params::text, requested_by, requested_at, claimed_by, reason, new_job_id, result::text,
       finished_at
FROM commands
WHERE connection_id = %(connection_id)s AND new_job_id = %(job_id)s
ORDER BY requested_at, command_id
LIMIT 200

-- name: retried_as
-- The job each retried job became (its latest successful retry).
SELECT DISTINCT ON (job_id) job_id, new_job_id
FROM commands
WHERE connection_id = %(connection_id)s AND job_id = ANY(%(job_ids)s::text[])
  AND action = 'retry' AND status = 'succeeded' AND new_job_id IS NOT NULL
ORDER BY job_id, finished_at DESC

-- name: retried_from
SELECT new_job_id, job_id
FROM commands
WHERE connection_id = %(connection_id)s AND new_job_id = ANY(%(job_ids)s::text[])
  AND action = 'retry'

-- name: job_states
SELECT job_id, state FROM jobs
WHERE connection_id = %(connection_id)s AND job_id = ANY(%(job_ids)s::text[])
