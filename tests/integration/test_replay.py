"""`sluice replay` rebuilds exactly the read models the live projection built."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg

from sluice.domain.celery import normalize
from sluice.domain.events import Event
from sluice.service import ingest
from sluice.service.rebuild import rebuild as replay
from sluice.store import connections
from tests.helpers import normalized

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import traffic

READ_MODELS = ["jobs", "job_transitions", "workers", "queues", "queue_samples", "rollups_minute"]


def _tables(db: psycopg.Connection) -> dict[str, list[tuple[Any, ...]]]:
    return {t: sorted(db.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in READ_MODELS}


def _load_mixed_traffic(db: psycopg.Connection, fixture: Path) -> None:
    """Fixture + synthetic traffic, shuffled within windows, resent in part, two connections."""
    rnd = random.Random(5)
    for name in ("a", "b"):
        cid = connections.create_connection(db, name)
        events = normalized(fixture, cid) + [
            e for e in (normalize(r, cid) for r in traffic.stream(300, seed=len(name)))
            if isinstance(e, Event)]
        window = [events[i:i + 60] for i in range(0, len(events), 60)]
        for chunk in window:
            rnd.shuffle(chunk)  # out of order within a window, as SDK + agent deliver
        flat = [e for chunk in window for e in chunk]
        for i in range(0, len(flat), 45):
            ingest.append(db, cid, flat[i:i + 45] + rnd.sample(flat, 3))
        samples = [Event(kind="queue.sampled", timestamp=flat[0].timestamp + k,
                         dedup_key=f"sample-{name}-{k:04d}", queue=q, depth=k, hostname="agent")
                   for k in range(5) for q in ("default", "emails")]
        ingest.append(db, cid, samples)


def test_replay_rebuilds_exactly_the_live_read_models(
    db: psycopg.Connection, fixture_events_path: Path
) -> None:
    _load_mixed_traffic(db, fixture_events_path)
    live = _tables(db)
    assert len(live["jobs"]) > 600 and live["rollups_minute"] and live["queues"]
    stats = replay(db)
    assert stats.events == db.execute("SELECT count(*) FROM events").fetchone()[0]
    assert _tables(db) == live


def test_sluice_replay_command(fresh_db_url: str, fixture_events_path: Path) -> None:
    with psycopg.connect(fresh_db_url, autocommit=True) as db:
        cid = connections.create_connection(db, "cli")
        ingest.append(db, cid, normalized(fixture_events_path, cid))
        live = _tables(db)
        db.execute("DELETE FROM jobs")  # a damaged read model
    env = {**os.environ, "SLUICE_DATABASE_URL": fresh_db_url}
    out = subprocess.run([sys.executable, "-m", "sluice.cli", "replay"], env=env,
                         capture_output=True, text=True, timeout=120, check=True)
    assert "replayed 71 events" in out.stdout and "events/s" in out.stdout
    assert "71/71 events" in out.stderr  # the progress bar
    with psycopg.connect(fresh_db_url, autocommit=True) as db:
        assert _tables(db) == live
