-- Ingest speed: fewer index entries per job write (each job is written about twice).
--
-- The newest-first list over all states, and the one by queue, are served by merging each
-- state's ordered range (jobs_state_idx, jobs_state_queue_idx) lazily: with eight states,
-- a page reads about as many index entries as before. Their own indexes go.
DROP INDEX jobs_recent_idx;
DROP INDEX jobs_queue_idx;
-- A job has no worker until one receives it (the producer's write): only rows with a worker
-- can match a worker filter.
DROP INDEX jobs_worker_idx;
CREATE INDEX jobs_worker_idx ON jobs (connection_id, worker, first_seen_at DESC, job_id DESC)
    WHERE worker IS NOT NULL;
