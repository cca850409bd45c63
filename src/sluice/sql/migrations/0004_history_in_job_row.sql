-- Ingest speed: a job's state history lives in its row, and key text columns compare bytewise.
--
-- 1. history: the job's transitions as a JSON array of [state, at (epoch s), kind, hostname,
--    attempt, dedup_key], written with the row it belongs to. A separate table cost every
--    append ~6 more rows per job (COPY, index, delete on rewrite) for data only ever read
--    whole, with its job. The view `job_transitions` keeps the relational shape for SQL.
ALTER TABLE jobs ADD COLUMN history json NOT NULL DEFAULT '[]';
-- outcomes are only ever read back whole by the projector: json, like history and payload
ALTER TABLE jobs ALTER COLUMN outcomes TYPE json USING outcomes::json;

UPDATE jobs AS j
SET history = t.history
FROM (
    SELECT connection_id, job_id,
           json_agg(json_build_array(state, extract(epoch FROM at)::float8, kind, hostname,
                                     attempt, dedup_key) ORDER BY seq) AS history
    FROM job_transitions
    GROUP BY connection_id, job_id
) AS t
WHERE j.connection_id = t.connection_id AND j.job_id = t.job_id;

DROP TABLE job_transitions;

-- 2. The "C" collation for ids, keys and the filter columns: every index insert compares
--    with memcmp instead of the locale's strcoll, and the primary key serves job id prefix
--    search (LIKE 'abc%'), so its own text_pattern_ops index goes.
DROP INDEX jobs_id_prefix_idx;
DROP INDEX IF EXISTS jobs_text_trgm_idx;  -- replaced below
ALTER TABLE jobs
    ALTER COLUMN job_id TYPE text COLLATE "C",
    ALTER COLUMN state TYPE text COLLATE "C",
    ALTER COLUMN queue TYPE text COLLATE "C",
    ALTER COLUMN worker TYPE text COLLATE "C",
    ALTER COLUMN parent_id TYPE text COLLATE "C",
    ALTER COLUMN group_id TYPE text COLLATE "C";
ALTER TABLE events ALTER COLUMN dedup_key TYPE text COLLATE "C";

-- 3. One trigram index for substring search, over name and exception (job ids are searched
--    by prefix, on the primary key). The two former ones indexed the name twice and every
--    job id's ~38 trigrams, which cost each job write more than all its btrees together.
DROP INDEX IF EXISTS jobs_name_trgm_idx;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        CREATE INDEX jobs_text_trgm_idx ON jobs USING gin (
            lower(coalesce(name, '') || ' ' || coalesce(exception, '')) gin_trgm_ops);
    END IF;
END
$$;

-- The relational shape of the histories, for SQL (and the job detail's history).
CREATE VIEW job_transitions AS
SELECT j.connection_id, j.job_id, (h.n - 1)::integer AS seq, h.e->>0 AS state,
       to_timestamp((h.e->>1)::float8) AS at, h.e->>2 AS kind, h.e->>3 AS hostname,
       (h.e->>4)::integer AS attempt, h.e->>5 AS dedup_key
FROM jobs AS j
CROSS JOIN LATERAL json_array_elements(j.history) WITH ORDINALITY AS h(e, n);
