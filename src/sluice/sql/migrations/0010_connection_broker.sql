-- A connection knows its broker (and, optionally, its result backend), so the server can act
-- on it: retry, revoke and worker controls. Both are secrets: the API never returns them with
-- their passwords. `executor_seen_at`: when an agent executor (`sluice agent
-- --execute-commands`) last asked for commands, so a connection whose broker the server
-- cannot reach may still take commands.
ALTER TABLE connections
    ADD COLUMN broker_url         text,
    ADD COLUMN result_backend_url text,
    ADD COLUMN executor_seen_at   timestamptz;
