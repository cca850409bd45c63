-- The commands read model (sluice.views.commands): one row per command, folded from the
-- system stream's command.* events (requested, running, succeeded | failed).
CREATE TABLE commands (
    connection_id uuid NOT NULL,
    command_id    text COLLATE "C" NOT NULL,
    action        text,                    -- retry, revoke, pool_grow, ... (domain.commands)
    status        text COLLATE "C" NOT NULL,  -- requested | running | succeeded | failed
    job_id        text COLLATE "C",
    hostname      text,
    queue         text,
    task_name     text,
    bulk_id       text COLLATE "C",        -- a job's command inside a bulk action
    total         integer,                 -- a bulk action: how many jobs it holds
    params        json,
    requested_by  text,
    requested_at  timestamptz,
    claims        integer NOT NULL DEFAULT 0,  -- times an agent executor claimed it
    claimed_by    text,
    claimed_at    timestamptz,
    reason        text,
    new_job_id    text COLLATE "C",
    result        json,
    finished_at   timestamptz,
    PRIMARY KEY (connection_id, command_id)
);
-- the list (bulk actions' own job commands are read under their bulk)
CREATE INDEX commands_list_idx ON commands (connection_id, requested_at DESC, command_id DESC)
    WHERE bulk_id IS NULL;
-- a bulk action's jobs: its progress by status, its per-job list
CREATE INDEX commands_bulk_idx ON commands (connection_id, bulk_id, status, command_id)
    WHERE bulk_id IS NOT NULL;
-- a job's commands, and the job a retry created
CREATE INDEX commands_job_idx ON commands (connection_id, job_id) WHERE job_id IS NOT NULL;
CREATE INDEX commands_new_job_idx ON commands (connection_id, new_job_id)
    WHERE new_job_id IS NOT NULL;
-- what executors still have to do
CREATE INDEX commands_pending_idx ON commands (connection_id, requested_at)
    WHERE status IN ('requested', 'running');
-- revokes to send again to a worker that comes online
CREATE INDEX commands_revoked_idx ON commands (connection_id, finished_at)
    WHERE action = 'revoke' AND status = 'succeeded';
