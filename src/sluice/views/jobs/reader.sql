-- Job list and detail reads. `list_jobs` and `job_facets` carry a {filters} slot filled only
-- with the static `f_*` fragments below (never user text): one plan shape per filter set,
-- so PostgreSQL plans each combination for its own index instead of a generic catch-all.
-- A {limit} slot takes the name of the limit parameter (%(limit)s, or %(window)s for the
-- text filters' window of newest jobs).

-- name: list_jobs
SELECT job_id, name, state, queue, worker, retries, sent_at, received_at, started_at,
       finished_at, runtime, exception, first_seen_at, last_event_at, parent_id, root_id,
       group_id
FROM jobs
WHERE connection_id = %(connection_id)s {filters}
ORDER BY first_seen_at DESC, job_id DESC
LIMIT {limit}

-- name: list_jobs_merged
-- Without a worker or id filter: each state's newest rows (one ordered range of
-- jobs_state_idx, or of jobs_state_queue_idx under a queue filter) merged lazily by a Merge
-- Append, which reads about `limit` index entries. The slot takes the UNION ALL of one
-- branch per state (newest_branch); a newest-first index over all states would cost every
-- job write one more index entry.
SELECT * FROM ({newest}) AS j
ORDER BY first_seen_at DESC, job_id DESC
LIMIT {limit}

-- name: newest_branch
-- One state's part of a merged list: its slots take a State value as a literal (never user
-- text), the other filters and the statement's limit parameter.
(SELECT job_id, name, state, queue, worker, retries, sent_at, received_at, started_at,
        finished_at, runtime, exception, first_seen_at, last_event_at, parent_id, root_id,
        group_id
 FROM jobs
 WHERE connection_id = %(connection_id)s AND state = {state} {filters}
 ORDER BY first_seen_at DESC, job_id DESC
 LIMIT {limit})

-- name: list_jobs_recent_text
-- Substring filters, first try: the newest `window` jobs under the other filters (an
-- ordered index range), filtered by the text. If that finds a full page it is exactly the
-- newest page of matches (older jobs come after the window); if not, the caller runs
-- list_jobs, where trigram indexes suit the rarer terms. Estimates for substring LIKEs are
-- guesses, so leaving the choice to the planner often sorts thousands of matches.
SELECT *
FROM ({window}) AS recent
WHERE true {text}
ORDER BY first_seen_at DESC, job_id DESC
LIMIT %(limit)s

-- name: list_jobs_scan_text
-- Substring filters without trigram indexes (pg_trgm missing, e.g. embedded pgserver): look
-- at the newest `window` jobs under the other filters and no further; with the page's
-- matches comes the window's oldest key, from which the caller's cursor continues (a page may
-- hold fewer matches than the limit: the scan per request stays bounded at any table size).
WITH recent AS MATERIALIZED (
    {window}
),
edge AS (
    SELECT first_seen_at AS edge_at, job_id AS edge_id,
           (SELECT count(*) FROM recent) AS scanned
    FROM recent
    ORDER BY first_seen_at, job_id
    LIMIT 1
)
SELECT m.*, edge.edge_at, edge.edge_id, edge.scanned
FROM edge
LEFT JOIN LATERAL (
    SELECT * FROM recent
    WHERE true {text}
    ORDER BY first_seen_at DESC, job_id DESC
    LIMIT %(limit)s
) AS m ON true
ORDER BY m.first_seen_at DESC, m.job_id DESC

-- name: has_trigram_index
SELECT to_regclass('jobs_text_trgm_idx') IS NOT NULL

-- name: job_facets
-- Per state, count up to `cap` jobs under the other filters: one jobs_state_idx range each,
-- so a facet costs at most cap index entries per state however many jobs there are.
SELECT s.state,
       (SELECT count(*)
        FROM (SELECT 1
              FROM jobs
              WHERE connection_id = %(connection_id)s AND state = s.state {filters}
              LIMIT %(cap)s) AS capped)
FROM unnest(%(all_states)s::text[]) AS s(state)

-- name: f_state
AND state = %(state)s

-- name: f_states
AND state = ANY(%(states)s::text[])

-- name: f_queue
AND queue = %(queue)s

-- name: f_worker
AND worker = %(worker)s

-- name: f_name
/* the first test is the trigram index's expression (implied by the second, which decides) */
AND lower(coalesce(name, '') || ' ' || coalesce(exception, '')) LIKE %(name_like)s
AND lower(name) LIKE %(name_like)s

-- name: f_id
AND job_id LIKE %(id_like)s

-- name: f_q
/* name or exception contains the text (trigram index), or the job id starts with it */
AND (lower(coalesce(name, '') || ' ' || coalesce(exception, '')) LIKE %(q_like)s
     OR job_id LIKE %(q_id_like)s)

-- name: f_since
AND first_seen_at >= %(since)s

-- name: f_until
AND first_seen_at < %(until)s

-- name: f_cursor
AND (first_seen_at, job_id) < (%(cursor_at)s, %(cursor_id)s)

-- name: job_detail
SELECT job_id, name, state, queue, worker, retries, sent_at, received_at, started_at,
       finished_at, runtime, exception, first_seen_at, last_event_at, parent_id, root_id,
       group_id, routing_key, args, kwargs, result, traceback, eta, expires, rejected, events
FROM jobs
WHERE connection_id = %(connection_id)s AND job_id = %(job_id)s

-- name: job_history
SELECT state, at, kind, hostname, attempt
FROM job_transitions
WHERE connection_id = %(connection_id)s AND job_id = %(job_id)s
ORDER BY seq

-- name: job_refs
SELECT job_id, name, state
FROM jobs
WHERE connection_id = %(connection_id)s AND job_id = ANY(%(job_ids)s::text[])

-- name: job_children
SELECT job_id, name, state
FROM jobs
WHERE connection_id = %(connection_id)s AND parent_id = %(job_id)s AND job_id <> %(job_id)s
ORDER BY first_seen_at, job_id
LIMIT %(limit)s

-- name: job_group
SELECT job_id, name, state
FROM jobs
WHERE connection_id = %(connection_id)s AND group_id = %(group_id)s
ORDER BY first_seen_at, job_id
LIMIT %(limit)s
