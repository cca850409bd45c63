"""`sluice demo`: an embedded stack (PostgreSQL, Redis, API, agent) and real Celery workers."""
