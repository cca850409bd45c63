from __future__ import annotations

import json
from pathlib import Path

import psycopg

from sluice.domain.celery import normalize
from sluice.domain.events import Event
from sluice.store import event_log


def test_fixture_appends_then_dedups(db: psycopg.Connection, fixture_events_path: Path) -> None:
    cid = event_log.create_connection(db, "smoke")
    events = [normalize(json.loads(line), cid) for line in fixture_events_path.open()]
    assert all(isinstance(e, Event) for e in events)
    first = event_log.append(db, cid, events)
    assert (first.accepted, first.duplicates) == (71, 0)
    again = event_log.append(db, cid, events)
    assert (again.accepted, again.duplicates) == (0, 71)
