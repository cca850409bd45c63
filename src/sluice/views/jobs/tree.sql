-- name: workflow
-- A workflow: the root job and every job below it by parent links (chains, groups, chords'
-- bodies), breadth-first by the parent index, bounded in depth and size.
WITH RECURSIVE tree AS (
    SELECT job_id, 0 AS depth
    FROM jobs WHERE connection_id = %(connection_id)s AND job_id = %(root_id)s
    UNION
    SELECT j.job_id, t.depth + 1
    FROM tree t
    JOIN jobs j ON j.connection_id = %(connection_id)s AND j.parent_id = t.job_id
    WHERE t.depth < %(max_depth)s AND j.job_id <> t.job_id
)
SELECT j.job_id, j.name, j.state, j.parent_id, j.group_id, j.first_seen_at, j.runtime
FROM (SELECT job_id, min(depth) AS depth FROM tree GROUP BY job_id) t
JOIN jobs j ON j.connection_id = %(connection_id)s AND j.job_id = t.job_id
ORDER BY t.depth, j.first_seen_at, j.job_id
LIMIT %(limit)s
