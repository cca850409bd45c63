"""Test helpers shared by unit and integration tests (no fixtures here)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import psycopg

from sluice.domain.celery import normalize
from sluice.domain.events import Event


def load_celery_events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def normalized(path: Path, connection_id: str | None = None) -> list[Event]:
    out = []
    for raw in load_celery_events(path):
        event = normalize(raw, connection_id)
        assert isinstance(event, Event), event
        out.append(event)
    return out


def by_job(events: list[Event]) -> dict[str, list[Event]]:
    jobs: dict[str, list[Event]] = defaultdict(list)
    for e in events:
        if e.job_id:
            jobs[e.job_id].append(e)
    return dict(jobs)


def event_partitions(conn: psycopg.Connection) -> set[str]:
    """The names of the event log's partitions."""
    return {r[0] for r in conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'events'::regclass")}
