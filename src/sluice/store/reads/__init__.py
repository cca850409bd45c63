"""Read-model queries for the read API: jobs, workers, queues, stats (one module each)."""
