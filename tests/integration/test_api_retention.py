"""Retention: exactly the expired data goes, per connection; shared partitions are dropped
only once older than the longest retention; `sluice purge` runs the same purge."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import psycopg
import pytest

from sluice.cli import main as cli_main
from sluice.domain.events import COMMAND_RETRY, Event
from sluice.domain.validate import parse_event
from sluice.log import event_log
from sluice.service import ingest, retention
from sluice.store import connections
from sluice.store.partitions import partition_name
from tests.helpers import event_partitions

HOURS_AGO = (1, 20, 40, 60, 80, 100, 300)  # 300 h: older than the partition window (default)

# table -> (its time column, what identifies a row)
TABLES: dict[str, tuple[str, str]] = {
    "events": ("ts", "position::text"),
    "jobs": ("last_event_at", "job_id"),
    "rollups_minute": ("minute", "minute::text || name || queue || outcome"),
    "queue_samples": ("sampled_at", "name || sampled_at::text"),
    "queues": ("sampled_at", "name"),
    "workers": ("last_event_at", "hostname"),
}


def _events(now: float) -> list[Event]:
    raw: list[dict[str, Any]] = []
    for h in HOURS_AGO:
        ts = now - h * 3600
        job = f"job-{h}h"
        raw += [
            {"kind": "job.sent", "timestamp": ts, "job_id": job, "name": "t", "queue": "q"},
            {"kind": "job.succeeded", "timestamp": ts + 0.5, "job_id": job, "runtime": 0.4,
             "hostname": "w@h"},
            {"kind": "queue.sampled", "timestamp": ts, "queue": f"q{h}", "depth": h},
            {"kind": "worker.heartbeat", "timestamp": ts, "hostname": f"w{h}@h", "clock": h},
        ]
    parsed = [parse_event(r, time.time()) for r in raw]
    assert all(isinstance(e, Event) for e in parsed), parsed
    return parsed  # type: ignore[return-value]


def _rows(conn: psycopg.Connection, cid: str) -> dict[str, dict[str, dt.datetime]]:
    out = {}
    for table, (col, ident) in TABLES.items():
        out[table] = dict(conn.execute(  # type: ignore[arg-type]
            f"SELECT {ident}, {col} FROM {table} WHERE connection_id = %s", (cid,)).fetchall())
    out["job_transitions"] = {
        f"{job}/{seq}": at for job, seq, at in conn.execute(
            "SELECT job_id, seq, at FROM job_transitions WHERE connection_id = %s", (cid,))
    }
    return out


def test_purge_removes_exactly_the_expired_data(db: psycopg.Connection) -> None:
    now_ts = time.time()
    now = dt.datetime.fromtimestamp(now_ts, dt.UTC)
    retentions = {"short": 30, "long": 70}
    cids = {}
    for name, hours in retentions.items():
        cids[name] = connections.create_connection(db, name, retention_hours=hours)
        result = ingest.append(db, cids[name], _events(now_ts))
        assert result.accepted == 4 * len(HOURS_AGO)
    before = {name: _rows(db, cid) for name, cid in cids.items()}
    parts_before = event_partitions(db)
    assert "events_default" in parts_before

    result = retention.purge(db, now)

    longest_cutoff = now - dt.timedelta(hours=max(retentions.values()))
    expected_dropped = {
        p for p in parts_before if p.startswith("events_p") and dt.datetime.combine(
            dt.datetime.strptime(p[8:], "%Y%m%d").date() + dt.timedelta(days=1), dt.time(),
            dt.UTC) <= longest_cutoff
    }
    assert expected_dropped, "the test should cover partition drops"
    assert set(result.dropped_partitions) == expected_dropped
    assert event_partitions(db) == parts_before - expected_dropped
    # the partition holding the 60 h old events is newer than the longest retention: kept
    assert partition_name((now - dt.timedelta(hours=60)).date()) in event_partitions(db)

    for name, cid in cids.items():
        cutoff = now - dt.timedelta(hours=retentions[name])
        after = _rows(db, cid)
        for table, rows in before[name].items():
            if table == "job_transitions":
                continue
            expired = {k for k, at in rows.items() if at < cutoff}
            assert expired and expired != set(rows), (name, table)
            assert after[table] == {k: at for k, at in rows.items() if at >= cutoff}, (
                name, table)
        kept_jobs = set(after["jobs"])
        assert after["job_transitions"] == {
            k: at for k, at in before[name]["job_transitions"].items()
            if k.split("/")[0] in kept_jobs}
    # a second purge finds nothing left to do
    again = retention.purge(db, now)
    assert (again.dropped_partitions, again.events, again.rows["jobs"]) == ([], 0, 0)


def test_sluice_purge_command(fresh_db_url: str, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SLUICE_DATABASE_URL", fresh_db_url)
    now = time.time()
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        cid = connections.create_connection(conn, "c", retention_hours=10)
        ingest.append(conn, cid, _events(now))
    assert cli_main(["purge", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    # of HOURS_AGO, all but the 1 h old ones are older than 10 h
    assert report["rows"]["jobs"] == len(HOURS_AGO) - 1
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        left = conn.execute("SELECT count(*) FROM events WHERE connection_id = %s",
                            (cid,)).fetchone()
    assert left == (4,)


def test_serve_purges_in_the_background(fresh_db_url: str) -> None:
    from litestar.testing import TestClient

    from sluice.api.app import create_app

    now = time.time()
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        cid = connections.create_connection(conn, "bg", retention_hours=10)
        ingest.append(conn, cid, _events(now))
    app = create_app(database_url=fresh_db_url, include_reads=False,
                     maintenance_interval_s=0.2, maintenance_first_delay_s=0.0)
    deadline = time.monotonic() + 20
    with TestClient(app), psycopg.connect(fresh_db_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            left = conn.execute("SELECT count(*) FROM events WHERE connection_id = %s",
                                (cid,)).fetchone()
            if left == (4,):
                break
            time.sleep(0.1)
    assert left == (4,)  # only the 1 h old events are within the 10 h retention


def test_system_stream_outlives_retention_until_an_admin_purges_it(
        db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch, fresh_db_url: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Traffic expires with the connection's retention; the server's own events (here a
    command) stay, so a rebuild from the log never loses them, until purged explicitly."""
    now = time.time()
    cid = connections.create_connection(db, "c", retention_hours=1)
    old = now - 5 * 3600
    command = Event(kind=COMMAND_RETRY, timestamp=old, job_id="j-old", dedup_key="cmd-0001-old")
    traffic = Event(kind="job.sent", timestamp=old, job_id="j-old", name="t",
                    dedup_key="sent-0001-old")
    assert ingest.append(db, cid, [command, traffic]).accepted == 2
    assert db.execute("SELECT count(*) FROM system_events").fetchone() == (1,)
    retention.purge(db, dt.datetime.now(dt.UTC))
    assert db.execute("SELECT count(*) FROM events WHERE connection_id = %s",
                      (cid,)).fetchone() == (0,)
    assert db.execute("SELECT kind FROM system_events").fetchall() == [(COMMAND_RETRY,)]
    # the rebuild folds the log's both streams: the command is still there to fold
    assert [s.event.kind for s in event_log.read_from(db, 0, connection_id=cid)] == [
        COMMAND_RETRY]
    monkeypatch.setenv("SLUICE_DATABASE_URL", fresh_db_url)
    assert cli_main(["purge", "--system-older-than-days", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"system_events": 0}  # 5 h is not 1 day
    assert cli_main(["purge", "--system-older-than-days", "0.1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"system_events": 1}
    assert db.execute("SELECT count(*) FROM system_events").fetchone() == (0,)
