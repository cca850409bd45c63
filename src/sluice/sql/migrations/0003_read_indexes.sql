-- Indexes for the read API (GET /api/jobs filters, job detail links, worker/queue stats).
-- Every index leads with connection_id, and the list ones end in the list order
-- (first_seen_at DESC, job_id DESC) so a filtered page is an index range scan + LIMIT.

CREATE INDEX jobs_queue_idx ON jobs (connection_id, queue, first_seen_at DESC, job_id DESC);
CREATE INDEX jobs_state_queue_idx
    ON jobs (connection_id, state, queue, first_seen_at DESC, job_id DESC);
CREATE INDEX jobs_worker_idx ON jobs (connection_id, worker, first_seen_at DESC, job_id DESC);
-- id prefix search (the primary key's collation-ordered btree cannot serve LIKE 'x%')
CREATE INDEX jobs_id_prefix_idx ON jobs (connection_id, job_id text_pattern_ops);
CREATE INDEX jobs_parent_idx ON jobs (connection_id, parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX jobs_group_idx ON jobs (connection_id, group_id) WHERE group_id IS NOT NULL;
-- recent finishes per worker (tasks per minute)
CREATE INDEX jobs_worker_finished_idx ON jobs (connection_id, worker, finished_at DESC)
    WHERE finished_at IS NOT NULL;
-- the overview, throughput series and queue stats read rollups by time (and queue):
-- covering indexes let them scan the index alone (old minutes are all-visible)
CREATE INDEX rollups_time_idx ON rollups_minute (connection_id, minute)
    INCLUDE (name, outcome, count);
CREATE INDEX rollups_queue_idx ON rollups_minute (connection_id, queue, minute)
    INCLUDE (outcome, count, runtime_sum);

-- Substring search (name, free text) uses trigram GIN indexes when pg_trgm is available
-- (contrib: present in distribution PostgreSQL, absent from pgserver's embedded build) and
-- may be created here; without it the read queries scan a bounded window of recent jobs.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
        BEGIN
            CREATE EXTENSION IF NOT EXISTS pg_trgm;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'pg_trgm not installed (no privilege): substring search unindexed';
        END;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        CREATE INDEX jobs_name_trgm_idx ON jobs USING gin (lower(name) gin_trgm_ops);
        CREATE INDEX jobs_text_trgm_idx ON jobs USING gin (
            lower(coalesce(name, '') || ' ' || job_id || ' ' || coalesce(exception, ''))
            gin_trgm_ops);
    END IF;
END
$$;
