"""Helpers for the API tests: realistic events, a connection with a key, auth headers."""

from __future__ import annotations

import time
import uuid
from typing import Any

import psycopg

from sluice.store import connections, keys
from sluice.store.migrations import migrate


def job_events(n: int, *, ts: float | None = None, prefix: str = "") -> list[dict[str, Any]]:
    """n distinct job events (a sent/started/succeeded life per job) as JSON-ready dicts."""
    base = time.time() if ts is None else ts
    out: list[dict[str, Any]] = []
    kinds = ("job.sent", "job.started", "job.succeeded")
    for i in range(n):
        job = f"{prefix}job-{i // 3}-{uuid.uuid4().hex[:6]}" if i % 3 == 0 else out[-1]["job_id"]
        kind = kinds[i % 3]
        event: dict[str, Any] = {
            "kind": kind,
            "timestamp": base + i * 0.001,
            "job_id": job,
            "name": "tasks.add",
            "queue": "celery",
            "hostname": "worker1@host",
            "clock": i,
        }
        if kind == "job.succeeded":
            event["runtime"] = 0.01
        out.append(event)
    return out


def new_connection(url: str, name: str = "test", *, daily_limit: int | None = None,
                   retention_hours: int = 168, scopes: list[str] | None = None
                   ) -> tuple[str, str, str]:
    """(connection_id, api_key, key_id) on the database at url."""
    with psycopg.connect(url, autocommit=True) as conn:
        migrate(conn)
        cid = connections.create_connection(conn, name, daily_limit=daily_limit,
                                            retention_hours=retention_hours)
        key = keys.create_key(conn, cid, scopes)
    return cid, key.api_key, key.id


def auth(api_key: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json", **extra}


def count_events(url: str, connection_id: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM events WHERE connection_id = %s",
                           (connection_id,)).fetchone()
    return int(row[0]) if row else 0
