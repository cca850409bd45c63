"""Pure domain: unified states and events, Celery normalization, the job fold. No I/O."""
