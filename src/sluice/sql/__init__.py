"""The database schema: `schema.sql` (the current schema, for reading) and the numbered
migrations under `migrations/` that build it, applied by `sluice.store.migrations`."""
