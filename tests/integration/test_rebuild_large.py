"""`rebuild` over a 1,000,000-event log, ingest going on, gives exactly the read models of
pure live ingest; killed (SIGKILL) mid-way, `sluice replay` resumes, each event folded once.

The log is loaded once per backend through the live path (bench/log_ingest.py: batches of
500 per source, 2 appender processes) into a base database; each test works on copies of
it (CREATE DATABASE .. TEMPLATE), so the live read models to compare with come with it.
Env SLUICE_TEST_REBUILD_EVENTS shrinks the log for a quick run.
"""

from __future__ import annotations

import math
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from sluice.domain.celery import normalize
from sluice.domain.events import Event
from sluice.log import event_log
from sluice.service import ingest
from sluice.service.rebuild import rebuild
from sluice.store import partitions
from tests.conftest import _split, _with_db, new_database

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import log_ingest
import traffic

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

LOG_EVENTS = int(os.environ.get("SLUICE_TEST_REBUILD_EVENTS", "1000000"))
HELD_SHARE = 0.01  # of the jobs: their later events come only during the rebuild
APPEND_EVERY = 0.25  # s between the concurrent appender's batches (~2,000 events/s)
READ_MODELS = ["jobs", "job_transitions", "workers", "queues", "queue_samples", "rollups_minute"]
# ingest-time columns: when the event reached each database, not what it says
IGNORED = {("workers", "last_received_at"), ("rollups_minute", "runtime_sum")}
ROLLUP_KEY = "connection_id, minute, name, queue, outcome"
Raw = dict[str, Any]


@dataclass
class Plan:
    log: list[Raw]  # loaded before the rebuild
    held: list[Raw]  # later events of some jobs of the log, appended during the rebuild
    end: float  # the log's last timestamp: new traffic starts after it


@pytest.fixture(scope="session")
def plan() -> Plan:
    """~LOG_EVENTS events of realistic traffic, generated once per session."""
    per_task = traffic.tasks(round(LOG_EVENTS * 1.01 / 4.1), seed=21)
    rnd = random.Random(21)
    held_jobs = {events[0]["uuid"] for events in rnd.sample(per_task, int(len(per_task)
                                                                         * HELD_SHARE))}
    stream = traffic.interleave(per_task)
    seen: dict[str, int] = {}
    log: list[Raw] = []
    held: list[Raw] = []
    for raw in stream:
        u = raw["uuid"]
        seen[u] = seen.get(u, 0) + 1
        # a held job keeps its task-sent and task-received in the log, the rest comes later
        (held if u in held_jobs and seen[u] > 2 else log).append(raw)
    return Plan(log, held, max(r["timestamp"] for r in stream))


@dataclass
class Loaded:
    server: str  # pg_server's URL
    name: str  # the loaded database, used as a template
    events: int
    connection_id: str


@pytest.fixture(scope="module")
def loaded(pg_server: str, plan: Plan) -> Iterator[Loaded]:
    """A database holding the log, appended through the live path."""
    with new_database(pg_server) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute("SHOW max_locks_per_transaction").fetchone() == ("64",)
        started = time.perf_counter()
        rate = log_ingest.sluice_rate(url, plan.log, "large")
        print(f"loaded {len(plan.log)} events in {time.perf_counter() - started:.1f} s "
              f"({rate:,.0f} events/s)")
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute("SELECT id::text FROM connections WHERE name = 'large'"
                               ).fetchone()
            assert row is not None
        yield Loaded(pg_server, psycopg.conninfo.conninfo_to_dict(url)["dbname"] or "",
                     len(plan.log), row[0])


@contextmanager
def copy_of(db: Loaded) -> Iterator[str]:
    """A new database, a copy of the loaded one (dropped after)."""
    base, _ = _split(db.server)
    name = f"sluice_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
            sql.Identifier(name), sql.Identifier(db.name)))
    try:
        yield _with_db(base, name)
    finally:
        with psycopg.connect(base, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))


def _columns(conn: psycopg.Connection, table: str) -> list[str]:
    rows = conn.execute("SELECT column_name FROM information_schema.columns WHERE "
                        "table_schema = 'public' AND table_name = %s ORDER BY ordinal_position",
                        (table,)).fetchall()
    assert rows, f"no table {table}"
    return [c for (c,) in rows if (table, c) not in IGNORED]


def _select(conn: psycopg.Connection, table: str) -> sql.Composed:
    return sql.SQL("SELECT {} FROM {}").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in _columns(conn, table)),
        sql.Identifier("public", table))


def _digests(conn: psycopg.Connection) -> dict[str, tuple[int, int]]:
    """Per read model: (rows, sum of the rows' hashes), in the server; rows compare as text."""
    out = {}
    for table in READ_MODELS:
        query = sql.SQL("SELECT count(*), coalesce(sum(hashtextextended(t::text, 0)::numeric), 0)"
                        " FROM ({}) AS t").format(_select(conn, table))
        row = conn.execute(query).fetchone()
        assert row is not None
        out[table] = (int(row[0]), int(row[1]))
    return out


def _runtime_sums(conn: psycopg.Connection) -> dict[tuple[Any, ...], float]:
    rows = conn.execute(f"SELECT {ROLLUP_KEY}, runtime_sum FROM rollups_minute").fetchall()
    return {tuple(r[:-1]): r[-1] for r in rows}


def _rows(url: str, table: str) -> set[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return {tuple(r) for r in conn.execute(_select(conn, table)).fetchall()}


def assert_same_read_models(url: str, expected_url: str) -> None:
    """The read models of `url` equal those of `expected_url` (ingest-time columns aside,
    rollups' float sums within 1e-6); on a difference, which rows differ."""
    with psycopg.connect(url, autocommit=True) as got, \
            psycopg.connect(expected_url, autocommit=True) as want:
        mine, theirs = _digests(got), _digests(want)
        sums, want_sums = _runtime_sums(got), _runtime_sums(want)
    problems = []
    for table in READ_MODELS:
        if mine[table] == theirs[table]:
            continue
        have, expect = _rows(url, table), _rows(expected_url, table)
        extra, missing = sorted(have - expect, key=repr), sorted(expect - have, key=repr)
        problems.append(f"{table}: {mine[table][0]} rows, expected {theirs[table][0]}; "
                        f"{len(extra)} unexpected, e.g. {extra[:3]}; "
                        f"{len(missing)} missing, e.g. {missing[:3]}")
    assert sums.keys() == want_sums.keys()
    off = [(k, sums[k], want_sums[k]) for k in sums
           if not math.isclose(sums[k], want_sums[k], rel_tol=1e-6, abs_tol=1e-9)]
    if off:
        problems.append(f"rollups_minute.runtime_sum: {len(off)} differ, e.g. {off[:3]}")
    assert not problems, "\n".join(problems)


def _supply(plan: Plan, held: list[Raw]) -> Iterator[list[Raw]]:
    """Batches of 500 per source, as live traffic arrives: first the held jobs' later events
    mixed with new tasks, then new tasks without end."""
    chunk = 0
    while True:
        new = traffic.interleave(traffic.tasks(2_000, seed=100 + chunk,
                                               start=plan.end + 1 + 2.5 * chunk))
        yield from log_ingest.source_batches((held if chunk == 0 else []) + new)
        chunk += 1


class Appender(threading.Thread):
    """Appends the same batches, in the same order, to two databases (each over its own
    connection), one batch each APPEND_EVERY seconds, until stopped."""

    def __init__(self, urls: tuple[str, str], connection_id: str, plan: Plan) -> None:
        super().__init__(daemon=True)
        self.urls, self.cid, self.plan = urls, connection_id, plan
        self.stop = threading.Event()
        self.batches = self.events = self.held_done = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            held = len(self.plan.held)
            with psycopg.connect(self.urls[0], autocommit=True) as a, \
                    psycopg.connect(self.urls[1], autocommit=True) as b:
                for raws in _supply(self.plan, self.plan.held):
                    events = [normalize(r, self.cid) for r in raws]
                    assert all(isinstance(e, Event) for e in events)
                    batch = [e for e in events if isinstance(e, Event)]
                    for conn in (a, b):
                        assert ingest.append(conn, self.cid, batch).accepted == len(batch)
                    self.batches += 1
                    self.events += len(batch)
                    self.held_done = min(held, self.held_done + sum(
                        1 for r in raws if r["timestamp"] <= self.plan.end))
                    if self.stop.wait(APPEND_EVERY):
                        return
        except BaseException as exc:  # reported by the test
            self.error = exc


def test_rebuild_while_ingest_goes_on_equals_live_ingest(loaded: Loaded, plan: Plan) -> None:
    with copy_of(loaded) as rebuilt, copy_of(loaded) as live:
        partitions.forget_cache()
        appender = Appender((rebuilt, live), loaded.connection_id, plan)
        with psycopg.connect(rebuilt, autocommit=True) as conn:
            assert conn.execute("SHOW max_locks_per_transaction").fetchone() == ("64",)
            appender.start()
            while appender.batches < 3 and appender.is_alive():
                time.sleep(0.05)
            started = time.perf_counter()
            stats = rebuild(conn)
            seconds = time.perf_counter() - started
            appended = appender.events
            appender.stop.set()
            appender.join(60)
            logged = event_log.count(conn, loaded.connection_id)
        print(f"rebuilt {stats.events} events in {seconds:.1f} s "
              f"({stats.events / seconds:,.0f} events/s); {appender.events} appended meanwhile")
        assert appender.error is None, appender.error
        assert not appender.is_alive()
        assert appender.held_done == len(plan.held), "the rebuild ended before the held events"
        # the rebuild folded what came during it, up to the swap
        assert loaded.events < stats.events <= loaded.events + appended
        assert logged == loaded.events + appender.events
        assert_same_read_models(rebuilt, live)


def _folded(url: str) -> int:
    """Events the rebuild's first pass has folded and committed (0 before it began)."""
    with psycopg.connect(url, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass('sluice_rebuild.first_pass')").fetchone()
        if not exists or exists[0] is None:
            return 0
        row = conn.execute("SELECT sum(events) FROM sluice_rebuild.first_pass").fetchone()
        return int(row[0]) if row and row[0] is not None else 0


def test_replay_killed_mid_way_resumes_once(loaded: Loaded, tmp_path: Path) -> None:
    with copy_of(loaded) as url:
        env = {**os.environ, "SLUICE_DATABASE_URL": url}
        command = [sys.executable, "-m", "sluice.cli", "replay"]
        err = tmp_path / "first.err"
        with err.open("wb") as stderr:
            first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
            deadline = time.monotonic() + 600
            # some chunks of the first pass in (of each shard's process, for a large log)
            while _folded(url) < min(100_000, loaded.events // 3):
                assert first.poll() is None, err.read_text()
                assert time.monotonic() < deadline
                time.sleep(0.1)
            first.send_signal(signal.SIGKILL)
            first.wait(60)
        with psycopg.connect(url, autocommit=True) as conn:
            # the killed client's backend ends, and so do its workers (orphaned, each stops
            # before its next commit)
            while conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                               ).fetchone() != (0,):
                time.sleep(0.1)
            done = _folded(url)
            left = event_log.count(conn, loaded.connection_id, done)
        assert 0 < done < loaded.events
        second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1200,
                                check=True)
        print(second.stdout)
        assert "(resumed)" in second.stdout
        replayed = re.search(r"replayed (\d+) events", second.stdout)
        assert replayed is not None, second.stdout
        assert int(replayed.group(1)) == left  # each event folded once: before or after
        assert f"{left}/{left} events" in second.stderr  # the progress bar
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute("SELECT to_regnamespace('sluice_rebuild')").fetchone() == (
                None,)
        with copy_of(loaded) as live:  # the live read models, as loaded
            assert_same_read_models(url, live)
