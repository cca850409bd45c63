"""Tracked processors on a real PostgreSQL: exactly once across re-runs, a kill -9, rival
runners; decided events in the log with the tracking move; ticks in the lock holder only;
the thread woken by the log's NOTIFY."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

from sluice.domain.events import COMMAND_REVOKE, Event
from sluice.log import event_log, tracking
from sluice.service import ingest
from sluice.service.processors import Processor, Report, Runner, lock_key, process_pending
from sluice.store import connections
from tests.helpers import normalized
from tests.integration.processors_support import (
    TABLE,
    Commanding,
    Counting,
    append_heartbeats,
    create_table,
    heartbeats,
)

ROOT = Path(__file__).resolve().parents[2]


def _rows(db: psycopg.Connection, cid: str, table: str = TABLE) -> tuple[int, int]:
    """(rows, distinct positions) of the connection in a counting processor's table."""
    row = db.execute(f"SELECT count(*), count(DISTINCT position) FROM {table} "
                     "WHERE connection_id = %s", (cid,)).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _positions(db: psycopg.Connection, cid: str) -> list[int]:
    return [p for (p,) in db.execute(
        f"SELECT position FROM {TABLE} WHERE connection_id = %s ORDER BY position", (cid,))]


def _logged_positions(db: psycopg.Connection, cid: str) -> list[int]:
    return [e.position for e in event_log.read_from(db, 0, 10**9, connection_id=cid)]


def _until_done(runner: Runner, db: psycopg.Connection, cid: str, name: str,
                timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    last = event_log.last_position(db, cid)
    while tracking.position(db, cid, name) < last:
        assert time.monotonic() < deadline, "the runner did not finish"
        report = runner.run_once()
        assert not report.errors, report.errors
        if not report.held:
            time.sleep(0.05)


def test_lock_key_is_stable_and_distinct() -> None:
    assert lock_key("counting") == lock_key("counting")
    assert lock_key("counting") != lock_key("commanding")
    assert -(2**63) <= lock_key("x") < 2**63
    with pytest.raises(ValueError):
        Runner("", [Counting("a"), Counting("a")])


def test_each_event_is_handled_exactly_once(db: psycopg.Connection, fresh_db_url: str,
                                            fixture_events_path: Path) -> None:
    cid = connections.create_connection(db, "shop")
    other = connections.create_connection(db, "other")
    assert ingest.append(db, cid, normalized(fixture_events_path, cid)).accepted == 71
    append_heartbeats(db, cid, 3000)
    append_heartbeats(db, other, 250)
    create_table(db)
    runner = Runner(fresh_db_url, [Counting(page_size=100)])
    try:
        report = runner.run_once()
        assert report.errors == [] and report.held == ["counting"]
        assert report.handled == 3071 + 250
        assert _rows(db, cid) == (3071, 3071)
        assert _positions(db, cid) == _logged_positions(db, cid)
        assert _rows(db, other) == (250, 250)
        assert tracking.position(db, cid, "counting") == event_log.last_position(db, cid)
        # again: nothing pending
        again = runner.run_once()
        assert (again.pages, again.handled) == (0, 0)
        assert _rows(db, cid) == (3071, 3071)
        # more arrives: only the new events
        ingest.append(db, cid, _more_heartbeats(120))
        assert runner.run_once([cid]).handled == 120
        assert _rows(db, cid) == (3191, 3191)
    finally:
        runner.close()


def _more_heartbeats(n: int) -> list[Event]:
    return heartbeats(n, hostname="w2@host")


def test_kinds_filter_skips_others_but_advances(db: psycopg.Connection) -> None:
    cid = connections.create_connection(db, "shop")
    append_heartbeats(db, cid, 300)
    ingest.append(db, cid, _more_heartbeats(10))
    create_table(db)
    only_jobs = Counting("jobs-only", kinds=("job.",))
    report = process_pending(db, only_jobs, cid)
    assert (report.pages, report.handled) == (4, 0)
    assert _rows(db, cid) == (0, 0)
    assert tracking.position(db, cid, "jobs-only") == event_log.last_position(db, cid)


def test_a_kill_mid_way_resumes_after_the_last_committed_page(
    db: psycopg.Connection, fresh_db_url: str
) -> None:
    cid = connections.create_connection(db, "shop")
    total = 20_000
    append_heartbeats(db, cid, total)
    create_table(db)
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.processors_support", fresh_db_url],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 30
        while _rows(db, cid)[0] < 2_000:  # 20 pages committed
            assert child.poll() is None, child.stderr.read() if child.stderr else ""
            assert time.monotonic() < deadline, "the child processed nothing"
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    done, distinct = _rows(db, cid)
    assert done == distinct and 2_000 <= done < total  # killed mid-way
    # what it committed is whole pages, each with its tracking move
    assert done % 100 == 0
    assert tracking.position(db, cid, "counting") == _logged_positions(db, cid)[done - 1]

    runner = Runner(fresh_db_url, [Counting(page_size=100)])
    try:  # the dead child's session (and lock) goes away once its server sees the EOF
        _until_done(runner, db, cid, "counting")
    finally:
        runner.close()
    assert _rows(db, cid) == (total, total)
    assert _positions(db, cid) == _logged_positions(db, cid)
    runners = dict(db.execute(f"SELECT runner, count(*) FROM {TABLE} GROUP BY 1").fetchall())
    assert runners["child"] == done and runners["main"] == total - done


def test_rival_runners_handle_each_event_once(db: psycopg.Connection,
                                              fresh_db_url: str) -> None:
    cid = connections.create_connection(db, "shop")
    total = 3_000
    append_heartbeats(db, cid, total)
    create_table(db)
    # two runners (one process each, in effect: each its own connections): one lock holder
    runners = [Runner(fresh_db_url, [Counting(page_size=50, runner=f"r{i}")])
               for i in range(2)]
    reports: list[Report] = []
    failures: list[BaseException] = []

    def run(runner: Runner) -> None:
        try:
            for _ in range(20):
                reports.append(runner.run_once())
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(r,)) for r in runners]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    try:
        assert not failures, failures
        assert all(not r.errors for r in reports)
        assert _rows(db, cid) == (total, total)
        holders = {name for r in reports for name in r.held}
        assert holders == {"counting"}
        by_runner = dict(db.execute(
            f"SELECT runner, count(*) FROM {TABLE} GROUP BY 1").fetchall())
        assert len(by_runner) == 1  # the other never held the lock
        # the holder releases: the other takes over what comes next
        holder = next(r for r in runners if r.held())
        waiting = next(r for r in runners if r is not holder)
        assert waiting.run_once().held == []
        holder.release()
        ingest.append(db, cid, _more_heartbeats(40))
        report = waiting.run_once()
        assert report.held == ["counting"] and report.handled == 40
        assert _rows(db, cid) == (total + 40, total + 40)
    finally:
        for r in runners:
            r.close()


def test_concurrent_pages_without_the_lock_stay_exactly_once(
    fresh_db_url: str, db: psycopg.Connection
) -> None:
    """Below the advisory lock: four threads page the same processor at once (the tracking
    row's lock and the forward-only record keep it exactly once)."""
    cid = connections.create_connection(db, "shop")
    total = 2_000
    append_heartbeats(db, cid, total)
    create_table(db)
    reports: list[Report] = []
    failures: list[BaseException] = []

    def run(i: int) -> None:
        try:
            with psycopg.connect(fresh_db_url, autocommit=True) as conn:
                reports.append(process_pending(conn, Counting(page_size=37, runner=f"t{i}"),
                                               cid))
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not failures, failures
    assert _rows(db, cid) == (total, total)
    assert sum(r.handled for r in reports) == total
    assert _positions(db, cid) == _logged_positions(db, cid)


def _system_keys(db: psycopg.Connection, cid: str) -> list[str]:
    return [k for (k,) in db.execute(
        "SELECT dedup_key FROM system_events WHERE connection_id = %s ORDER BY position",
        (cid,))]


def test_decided_events_go_to_the_log_with_the_tracking_move(
    db: psycopg.Connection, fresh_db_url: str
) -> None:
    cid = connections.create_connection(db, "shop")
    total = 1_000
    append_heartbeats(db, cid, total)
    create_table(db)
    # the page that would move the position past 500 fails at its tracking move
    db.execute("""
        CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.position > 500 THEN RAISE EXCEPTION 'refused'; END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON tracking
            FOR EACH ROW EXECUTE FUNCTION refuse();
    """)
    runner = Runner(fresh_db_url, [Commanding(every=10, bad=True)])
    try:
        report = runner.run_once()
        assert len(report.errors) == 1 and "refused" in report.errors[0]
        assert tracking.position(db, cid, "commanding") == 500
        # the failed page's rows and commands were rolled back with it
        assert _rows(db, cid) == (500, 500)
        assert _system_keys(db, cid) == [f"retry-{p:08d}" for p in range(10, 501, 10)]
        assert report.appended == 50 and report.dropped == 2 * 5  # two bad per page

        db.execute("DROP TRIGGER refuse ON tracking")
        report = runner.run_once()
        assert not report.errors
        assert report.appended == 50
        assert _rows(db, cid) == (total, total)  # the commands were not handed back to it
        keys = _system_keys(db, cid)
        assert keys == [f"retry-{p:08d}" for p in range(10, total + 1, 10)]
        stored = [e for e in event_log.read_from(db, 0, 10**9, connection_id=cid)
                  if e.event.kind == "command.retry"]
        assert [e.event.job_id for e in stored][:2] == ["job-10", "job-20"]
        assert all(e.position > total for e in stored)
        bad = db.execute("SELECT count(*) FROM system_events WHERE dedup_key LIKE 'bad-%%' "
                         "OR dedup_key LIKE 'forged-%%'").fetchone()
        assert bad == (0,)
        assert db.execute("SELECT count(*) FROM events WHERE hostname = 'forged@host'"
                          ).fetchone() == (0,)
        # a re-run (another processor deciding the same keys) only finds duplicates
        rerun = process_pending(db, Commanding("commanding-again", every=10), cid)
        assert rerun.handled == total and rerun.appended == 0
        assert len(_system_keys(db, cid)) == total // 10
    finally:
        runner.close()


class Ticking(Processor):
    name = "ticking"
    interval_s = 60.0

    def __init__(self, runner: str, connection_id: str) -> None:
        self.runner = runner
        self.connection_id = connection_id

    def tick(self, conn: psycopg.Connection, now: float) -> list[tuple[str, Event]]:
        conn.execute("INSERT INTO ticks (runner, at) VALUES (%s, %s)", (self.runner, now))
        return [(self.connection_id, Event(
            kind=COMMAND_REVOKE, job_id="stuck-job", timestamp=time.time(),
            dedup_key=f"revoke-{self.runner}-{int(now)}"))]


def test_ticks_run_in_the_lock_holder_only_and_again_after_the_interval(
    db: psycopg.Connection, fresh_db_url: str
) -> None:
    cid = connections.create_connection(db, "shop")
    db.execute("CREATE TABLE ticks (runner text NOT NULL, at float8 NOT NULL)")
    clock = [1_000.0]
    a = Runner(fresh_db_url, [Ticking("a", cid)], clock=lambda: clock[0])
    b = Runner(fresh_db_url, [Ticking("b", cid)], clock=lambda: clock[0])

    def ticks() -> list[tuple[str, float]]:
        return [(r, t) for r, t in db.execute("SELECT runner, at FROM ticks ORDER BY at, runner")]

    try:
        assert a.run_once().ticks == 1  # it takes the lock: its first tick is due at once
        assert b.run_once().held == [] and ticks() == [("a", 1000.0)]
        clock[0] += 30
        assert a.run_once().ticks == 0 and b.run_once().ticks == 0
        clock[0] += 31
        assert a.run_once().ticks == 1 and b.run_once().ticks == 0
        assert ticks() == [("a", 1000.0), ("a", 1061.0)]
        a.release()  # b takes over
        clock[0] += 1
        assert b.run_once().ticks == 1
        assert ticks() == [("a", 1000.0), ("a", 1061.0), ("b", 1062.0)]
        assert _system_keys(db, cid) == ["revoke-a-1000", "revoke-a-1061", "revoke-b-1062"]
    finally:
        a.close()
        b.close()


def test_the_thread_is_woken_by_the_logs_notify(db: psycopg.Connection,
                                               fresh_db_url: str) -> None:
    cid = connections.create_connection(db, "shop")
    create_table(db)
    append_heartbeats(db, cid, 200)
    runner = Runner(fresh_db_url, [Counting()], poll_s=60.0)  # no poll within the test
    runner.start()
    try:
        deadline = time.monotonic() + 10
        while _rows(db, cid)[0] < 200:
            assert time.monotonic() < deadline, "the first round did not run"
            time.sleep(0.02)
        time.sleep(0.3)  # the thread is waiting on LISTEN now
        ingest.append(db, cid, _more_heartbeats(30))
        deadline = time.monotonic() + 5
        while _rows(db, cid)[0] < 230:
            assert time.monotonic() < deadline, "the notification did not wake the runner"
            time.sleep(0.02)
    finally:
        runner.stop()
    assert _rows(db, cid) == (230, 230)
    # stopped: its lock is released for another process
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        assert conn.execute("SELECT pg_try_advisory_lock(%s)",
                            (lock_key("counting"),)).fetchone() == (True,)
