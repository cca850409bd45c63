"""The HTTP API (Litestar): ingest, health, auth; reads and SSE in `sluice.api.reads`."""
