"""PostgreSQL: connection pool, migrations, the event log, read-model queries."""
