-- Statements of the store's plumbing: migrations, partitions, the embedded server's tuning.

-- name: lock_migrations
-- serializes concurrent `serve` starts
SELECT pg_advisory_xact_lock(%(id)s)

-- name: create_migrations_table
CREATE TABLE IF NOT EXISTS schema_migrations (
    version text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)

-- name: migration_applied
SELECT 1 FROM schema_migrations WHERE version = %(version)s

-- name: record_migration
INSERT INTO schema_migrations (version) VALUES (%(version)s)

-- name: relation_exists
SELECT to_regclass(%(name)s) IS NOT NULL

-- name: create_partition
CREATE TABLE IF NOT EXISTS {name} PARTITION OF events FOR VALUES FROM ({start}) TO ({end})

-- name: settings
SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY(%(names)s)

-- name: alter_system
ALTER SYSTEM SET {name} = {value}

-- name: reload_conf
SELECT pg_reload_conf()
