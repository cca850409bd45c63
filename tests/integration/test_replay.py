"""`sluice replay` rebuilds exactly the read models the live projection built."""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from sluice.domain.celery import normalize
from sluice.domain.events import Event
from sluice.service import first_pass, ingest
from sluice.service.rebuild import rebuild as replay
from sluice.store import connections
from tests.helpers import normalized

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import traffic

READ_MODELS = ["jobs", "job_transitions", "workers", "queues", "queue_samples"]
ROLLUP_KEY = "connection_id, minute, name, queue, outcome"
Tables = dict[str, Any]


def _tables(db: psycopg.Connection) -> Tables:
    """Every read model's rows; the rollups' runtime sums apart, as {rollup key: sum}."""
    tables: Tables = {t: sorted(db.execute(f"SELECT * FROM {t}").fetchall(), key=repr)
                      for t in READ_MODELS}
    tables["rollups_minute"] = sorted(db.execute(
        f"SELECT {ROLLUP_KEY}, count, runtime_max FROM rollups_minute").fetchall(), key=repr)
    tables["runtime_sums"] = dict(((*r[:-1],), r[-1]) for r in db.execute(
        f"SELECT {ROLLUP_KEY}, runtime_sum FROM rollups_minute"))
    return tables


def assert_same_tables(got: Tables, want: Tables) -> None:
    """Equal read models. The rebuild sums each minute's runtimes in another order than live
    ingest did (job by job, without ingest's take-backs of revised contributions): float
    sums that differ in the last bits, so those compare with isclose; all else exactly."""
    sums, want_sums = got["runtime_sums"], want["runtime_sums"]
    assert {k: v for k, v in got.items() if k != "runtime_sums"} == {
        k: v for k, v in want.items() if k != "runtime_sums"}
    assert sums.keys() == want_sums.keys()
    assert all(math.isclose(sums[k], want_sums[k], rel_tol=1e-9, abs_tol=1e-12)
               for k in sums), [(k, sums[k], want_sums[k]) for k in sums]


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
    assert_same_tables(_tables(db), live)


class _Crash(Exception):
    pass


def test_a_first_pass_stopped_mid_way_resumes_each_event_once(
    db: psycopg.Connection, fixture_events_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _load_mixed_traffic(db, fixture_events_path)
    live = _tables(db)
    logged = db.execute("SELECT count(*) FROM events").fetchone()[0]
    monkeypatch.setattr(first_pass, "CHUNK", 300)
    seen: list[int] = []

    def crash_after_two_chunks(done: int, total: int) -> None:
        seen.append(done)
        if len(seen) == 2:
            raise _Crash  # after the second chunk committed: as if killed there

    with pytest.raises(_Crash):
        replay(db, progress=crash_after_two_chunks)
    folded = seen[-1]
    assert 600 <= folded < logged // 2
    assert db.execute("SELECT sum(events) FROM sluice_rebuild.first_pass").fetchone() == (
        folded,)
    totals: list[int] = []
    stats = replay(db, progress=lambda done, total: totals.append(total))
    assert stats.resumed
    assert stats.events == logged - folded  # the rest, each event once
    assert set(totals) == {logged - folded}
    assert_same_tables(_tables(db), live)


def test_a_large_log_is_folded_by_shards_in_processes(
    db: psycopg.Connection, fixture_events_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _load_mixed_traffic(db, fixture_events_path)
    live = _tables(db)
    monkeypatch.setattr(first_pass, "SHARDED_FROM", 1)  # as if this log were large
    assert first_pass.SHARDS > 1
    chunks: list[int] = []
    stats = replay(db, progress=lambda done, total: chunks.append(done))
    assert stats.events == db.execute("SELECT count(*) FROM events").fetchone()[0]
    # one chunk (and report) per shard and connection: every shard's events were reported
    assert len(chunks) == 2 * first_pass.SHARDS and chunks[-1] == stats.events
    assert_same_tables(_tables(db), live)


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
        assert_same_tables(_tables(db), live)
