"""The registry is the one place a read model is declared: a model added to it (here a
probe defined by the test, with its own table) is projected by ingest, rebuilt by
`sluice replay --view`, and expired by retention, with no other code naming its table."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

import psycopg
import pytest

from sluice.domain.events import JOB_SENT, Event, Stream
from sluice.service import ingest, rebuild, retention
from sluice.store import connections
from sluice.views import registry
from sluice.views.model import Context, Expiry, ReadModel

_TABLE = """
CREATE TABLE probe_names (
    connection_id uuid NOT NULL,
    name text NOT NULL,
    seen_at timestamptz NOT NULL,
    PRIMARY KEY (connection_id, name)
)"""


def _project(conn: psycopg.Connection, connection_id: str, events: Sequence[Event],
             ctx: Context) -> set[str]:
    for e in events:
        conn.execute(
            "INSERT INTO probe_names VALUES (%s, %s, to_timestamp(%s)) "
            "ON CONFLICT (connection_id, name) DO UPDATE "
            "SET seen_at = greatest(probe_names.seen_at, EXCLUDED.seen_at)",
            (connection_id, e.name, e.timestamp))
    return set()


PROBE = ReadModel(name="probe", tables=("probe_names",),
                  folds=lambda e: e.kind == JOB_SENT and e.name is not None,
                  project=_project, streams=frozenset({Stream.TRAFFIC}),
                  expiry=(Expiry("probe_names", "seen_at"),))


@pytest.fixture
def probe(db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    db.execute(_TABLE)
    monkeypatch.setattr(registry, "READ_MODELS", (*registry.READ_MODELS, PROBE))
    yield


def _sent(name: str, at: float, n: int) -> Event:
    return Event(kind=JOB_SENT, timestamp=at, job_id=f"job-{n}", name=name,
                 dedup_key=f"probe-{n:06d}")


def _names(db: psycopg.Connection) -> list[str]:
    return [n for (n,) in db.execute("SELECT name FROM probe_names ORDER BY name")]


def test_a_registered_model_is_projected_rebuilt_and_expired(
        db: psycopg.Connection, probe: None) -> None:
    now = time.time()
    cid = connections.create_connection(db, "c", retention_hours=2)
    old, new = now - 5 * 3600, now - 60
    ingest.append(db, cid, [_sent("old.task", old, 1), _sent("new.task", new, 2),
                            _sent("new.task", new, 3)])
    assert _names(db) == ["new.task", "old.task"]  # ingest projected it, same transaction

    db.execute("DELETE FROM probe_names")  # a damaged read model
    stats = rebuild.rebuild(db, ["probe"])
    assert stats.models == ["probe"] and stats.events == 3
    assert _names(db) == ["new.task", "old.task"]
    # the other read models were left alone (not rebuilt, not emptied)
    assert db.execute("SELECT count(*) FROM jobs").fetchone() == (3,)

    result = retention.purge(db)
    assert result.rows["probe_names"] == 1
    assert _names(db) == ["new.task"]
