-- A rebuild's shadow schema and the swap. {slots} take identifiers composed with
-- psycopg.sql (never user text).

-- name: try_lock
SELECT pg_try_advisory_lock(%(id)s)

-- name: unlock
SELECT pg_advisory_unlock(%(id)s)

-- name: schema_exists
SELECT to_regnamespace(%(schema)s) IS NOT NULL

-- name: plan
SELECT models FROM {schema}.plan

-- name: create_plan
CREATE TABLE {schema}.plan (models text[] NOT NULL, started_at timestamptz DEFAULT now())

-- name: insert_plan
INSERT INTO {schema}.plan (models) VALUES (%(models)s)

-- name: create_tracking
-- Unlogged, like the shadow tables: a PostgreSQL crash empties both together, so the
-- position recorded always matches what the shadow holds.
CREATE UNLOGGED TABLE {schema}.tracking (
    connection_id uuid NOT NULL,
    processor text NOT NULL,
    position bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connection_id, processor)
)

-- name: create_shadow
-- Columns, defaults and checks of the live table; indexes come after the catch-up but for
-- the primary key (projectors probe it). Unlogged until the swap: no WAL for the bulk.
CREATE UNLOGGED TABLE {shadow} (LIKE {live} INCLUDING DEFAULTS INCLUDING CONSTRAINTS
                                 INCLUDING GENERATED INCLUDING STORAGE)

-- name: primary_key
SELECT conname, pg_get_constraintdef(oid)
FROM pg_constraint
WHERE conrelid = to_regclass(%(table)s) AND contype = 'p'

-- name: secondary_indexes
-- The live table's other indexes, as their CREATE statements.
SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
FROM pg_index i
WHERE i.indrelid = to_regclass(%(table)s) AND NOT i.indisprimary
ORDER BY 1

-- name: view_definition
SELECT pg_get_viewdef(to_regclass(%(view)s), true)

-- name: lock_live
LOCK TABLE {tables} IN ACCESS EXCLUSIVE MODE

-- name: drop_schema
DROP SCHEMA IF EXISTS {schema} CASCADE

-- name: create_schema
CREATE SCHEMA {schema}

-- name: add_constraint
-- the definition: the live table's own, as pg_get_constraintdef gives it
ALTER TABLE {table} ADD CONSTRAINT {name} {definition}

-- name: set_logged
ALTER TABLE {table} SET LOGGED

-- name: analyze
ANALYZE {table}

-- name: swap_timeout
-- never queue long in front of ingest and reads: a busy swap is tried again
SET LOCAL lock_timeout = '3s'

-- name: live_names
-- the names below are the live ones
SET LOCAL search_path = public

-- name: move_table
ALTER TABLE {table} SET SCHEMA {schema}

-- name: replace_view
-- the definition: the view's own, as pg_get_viewdef gave it before the swap
CREATE OR REPLACE VIEW {view} AS {definition}
