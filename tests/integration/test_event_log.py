"""The event log on a real PostgreSQL: the fixture's outcome, dedup, bad input, followers."""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path
from typing import Any

import msgspec
import psycopg

from sluice.domain.events import Event
from sluice.domain.validate import parse_event
from sluice.log import event_log
from sluice.service import ingest
from sluice.store import connections, partitions
from tests.conftest import new_database
from tests.helpers import event_partitions, normalized

CAPTURE = {
    "84538795-293b-495b-9aa7-9798d3b64a40": ("shop.tasks.add", "completed", 0),
    "4f972aae-0c74-4b44-90e7-3a9157c8b207": ("shop.tasks.add", "completed", 0),  # countdown 2 s
    "51be180c-3ebb-43c2-a612-ed41506e18fe": ("shop.tasks.charge_card", "failed", 0),
    "bac7c037-6e67-467d-9550-0c7809b70453": ("shop.tasks.sync_inventory", "completed", 2),
    "778d9e91-66c4-46d1-a0db-8665abb99cb8": ("shop.tasks.send_email", "completed", 0),
    "77235696-13a1-47e9-b712-9fbfc77e9712": ("shop.tasks.generate_report", "cancelled", 0),
    "4e5b302c-efd3-4bb9-bbc9-573f2e5a3962": ("shop.tasks.bad_message", "failed", 0),
    # revoked while waiting for its 60 s countdown: Celery emits no event for that revoke
    # (the worker only drops the id into its revoked set), so the log shows it scheduled.
    "52161864-2073-432a-9500-f169633e62e8": ("shop.tasks.generate_report", "scheduled", 0),
}


def _jobs(db: psycopg.Connection, cid: str) -> dict[str, dict[str, Any]]:
    cur = db.execute(
        "SELECT job_id, name, state, retries, queue, worker, exception, traceback, rejected, "
        "runtime, finished_at, eta FROM jobs WHERE connection_id = %s", (cid,))
    cols = [c.name for c in cur.description or []]
    return {row[0]: dict(zip(cols, row, strict=True)) for row in cur}


def test_projecting_the_fixture_gives_the_captured_outcome(
    db: psycopg.Connection, fixture_events_path: Path
) -> None:
    cid = connections.create_connection(db, "shop")
    result = ingest.append(db, cid, normalized(fixture_events_path, cid))
    assert (result.accepted, result.duplicates, result.rejected) == (71, 0, [])
    jobs = _jobs(db, cid)
    assert len(jobs) == 13
    for job_id, (name, state, retries) in CAPTURE.items():
        job = jobs[job_id]
        assert (job["name"], job["state"], job["retries"]) == (name, state, retries), job_id
    adds = [j for j in jobs.values() if j["name"] == "shop.tasks.add"]
    assert len(adds) == 7 and all(j["state"] == "completed" for j in adds)
    charge = jobs["51be180c-3ebb-43c2-a612-ed41506e18fe"]
    assert charge["exception"] == "ValueError('card declined for order 1001')"
    assert "Traceback (most recent call last)" in charge["traceback"]
    assert "ValueError: card declined" in charge["traceback"]
    assert jobs["4e5b302c-efd3-4bb9-bbc9-573f2e5a3962"]["rejected"] is True
    assert jobs["778d9e91-66c4-46d1-a0db-8665abb99cb8"]["queue"] == "emails"
    assert jobs["bac7c037-6e67-467d-9550-0c7809b70453"]["exception"] is None
    assert jobs["52161864-2073-432a-9500-f169633e62e8"]["eta"].startswith("2026-11-24T19:02:48")

    worker = db.execute(
        "SELECT status, processed, active, freq, sw_ver, loadavg FROM workers "
        "WHERE connection_id = %s AND hostname = 'w1@capturehost'", (cid,)).fetchone()
    assert worker == ("offline", 14, 0, 2.0, "5.7.0", [0.24, 0.14, 0.05])

    history = db.execute(
        "SELECT state, attempt FROM job_transitions WHERE connection_id = %s AND job_id = %s "
        "ORDER BY seq", (cid, "bac7c037-6e67-467d-9550-0c7809b70453")).fetchall()
    assert [s for s, _ in history] == [
        "queued", "queued", "active", "retrying", "queued", "queued", "active", "retrying",
        "queued", "queued", "active", "completed"]

    rollups = dict(((name, outcome), count) for name, outcome, count in db.execute(
        "SELECT name, outcome, sum(count) FROM rollups_minute WHERE connection_id = %s "
        "GROUP BY 1, 2", (cid,)))
    assert rollups == {
        ("shop.tasks.add", "completed"): 7, ("shop.tasks.charge_card", "failed"): 1,
        ("shop.tasks.sync_inventory", "completed"): 1,
        ("shop.tasks.sync_inventory", "retrying"): 2, ("shop.tasks.send_email", "completed"): 1,
        ("shop.tasks.generate_report", "cancelled"): 1, ("shop.tasks.bad_message", "failed"): 1,
    }


def test_a_resent_batch_is_all_duplicates(db: psycopg.Connection,
                                          fixture_events_path: Path) -> None:
    cid = connections.create_connection(db, "shop")
    events = normalized(fixture_events_path, cid)
    ingest.append(db, cid, events[:40])
    again = ingest.append(db, cid, events + events[:5])  # also duplicated within the batch
    assert (again.accepted, again.duplicates) == (31, 45)
    count = db.execute("SELECT count(*) FROM events WHERE connection_id = %s", (cid,)).fetchone()
    assert count == (71,)


def test_a_reused_dedup_key_never_reaches_the_read_models(db: psycopg.Connection) -> None:
    """A sender that reuses a stored event's dedup key with other content: the log keeps the
    first, and the read models fold only what the log stored (no projection of the copy)."""
    cid = connections.create_connection(db, "shop")
    now = time.time()
    sent = Event(kind="job.sent", timestamp=now, dedup_key="k-1", job_id="job-a",
                 name="app.first", queue="default")
    ingest.append(db, cid, [sent])
    impostor = msgspec.structs.replace(sent, name="app.second", queue="other")
    other_job = msgspec.structs.replace(sent, dedup_key="k-1", job_id="job-b", name="app.b")
    fresh = Event(kind="job.started", timestamp=now + 1, dedup_key="k-2", job_id="job-a",
                  hostname="w1@h")
    result = ingest.append(db, cid, [impostor, other_job, fresh])
    assert (result.accepted, result.duplicates) == (1, 2)
    rows = db.execute("SELECT job_id, name, queue, state, events FROM jobs "
                      "WHERE connection_id = %s ORDER BY job_id", (cid,)).fetchall()
    assert rows == [("job-a", "app.first", "default", "active", 2)]
    payload = db.execute("SELECT payload->>'name' FROM events WHERE dedup_key = 'k-1'"
                         ).fetchone()
    assert payload == ("app.first",)


def _keyed_fold(packed: bytes) -> bytes:
    """A job row's events as rows written before FoldEvent kept them: keyed Event maps."""
    from sluice.views.jobs import projector as projection

    events = [Event(**msgspec.structs.asdict(e)) for e in projection._unpack(packed)]
    return msgspec.msgpack.Encoder(order="deterministic").encode(events)


def test_job_rows_written_with_keyed_folds_still_merge(
    db: psycopg.Connection, fixture_events_path: Path
) -> None:
    """Rows whose fold holds keyed Events (before positional FoldEvents) merge new events as
    rows written now do: the same jobs as one append of everything."""
    whole, split = (connections.create_connection(db, name) for name in ("whole", "split"))
    ingest.append(db, whole, normalized(fixture_events_path, whole))
    events = normalized(fixture_events_path, split)
    ingest.append(db, split, events[:30])
    for job_id, packed in db.execute("SELECT job_id, fold FROM jobs WHERE connection_id = %s",
                                     (split,)).fetchall():
        db.execute("UPDATE jobs SET fold = %s WHERE connection_id = %s AND job_id = %s",
                   (_keyed_fold(packed), split, job_id))
    keyed = db.execute("SELECT count(*) FROM jobs WHERE connection_id = %s AND (get_byte(fold, 1) "
                       "BETWEEN 128 AND 143 OR get_byte(fold, 1) IN (222, 223))",  # msgpack maps
                       (split,)).fetchone()
    assert keyed == (6,)
    ingest.append(db, split, events[30:])

    def jobs(cid: str) -> list[tuple[Any, ...]]:
        return db.execute(
            "SELECT job_id, state, name, queue, worker, retries, args, result, runtime, "
            "exception, traceback, sent_at, started_at, finished_at, events, "
            "outcomes::text, history::text FROM jobs WHERE connection_id = %s ORDER BY job_id",
            (cid,)).fetchall()

    assert jobs(split) == jobs(whole)
    assert len(jobs(split)) == 13


def test_a_batch_stores_its_free_jobs_while_another_append_holds_one(fresh_db_url: str) -> None:
    """An append held up by another append's job stores the rest of its batch at once (and
    counts it), then that job's events once the other commits; nothing is lost or doubled."""
    from sluice.service import ingest as quotas
    from sluice.store import usage

    with psycopg.connect(fresh_db_url, autocommit=True) as db:
        cid = connections.create_connection(db, "split")
        now = time.time()
        batch = [
            Event(kind="job.sent", timestamp=now, dedup_key="held-1", job_id="job-held",
                  name="app.held", queue="default"),
            Event(kind="job.sent", timestamp=now, dedup_key="free-1", job_id="job-free",
                  name="app.free", queue="default"),
            Event(kind="job.started", timestamp=now + 1, dedup_key="free-2", job_id="job-free",
                  hostname="w1@h"),
        ]
        done: list[quotas.AppendResult] = []
        with psycopg.connect(fresh_db_url, autocommit=True) as other:
            other.execute("BEGIN")  # another append, projecting job-held
            other.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                          (f"{cid}:job-held",))

            def ingest() -> None:
                with psycopg.connect(fresh_db_url, autocommit=True) as conn:
                    done.append(quotas.append(conn, cid, batch, quotas.utc_day()))

            worker = threading.Thread(target=ingest)
            worker.start()
            deadline = time.monotonic() + 10
            free = "SELECT count(*) FROM jobs WHERE job_id = 'job-free'"
            while time.monotonic() < deadline and db.execute(free).fetchone() != (1,):
                time.sleep(0.02)
            jobs = db.execute("SELECT job_id, state FROM jobs ORDER BY job_id").fetchall()
            stored = db.execute("SELECT dedup_key FROM events ORDER BY position").fetchall()
            assert worker.is_alive()  # still waiting for job-held
            assert jobs == [("job-free", "active")]
            assert stored == [("free-1",), ("free-2",)]
            assert usage.used(db, cid, quotas.utc_day()) == 2
            other.execute("COMMIT")
            worker.join(10)
        assert not worker.is_alive()
        assert [(r.accepted, r.duplicates, r.rejected) for r in done] == [(3, 0, [])]
        assert db.execute("SELECT job_id, state, name FROM jobs ORDER BY job_id").fetchall() == [
            ("job-free", "active", "app.free"), ("job-held", "queued", "app.held")]
        assert db.execute("SELECT dedup_key FROM events ORDER BY position").fetchall() == [
            ("free-1",), ("free-2",), ("held-1",)]
        assert usage.used(db, cid, quotas.utc_day()) == 3


def _snapshot(db: psycopg.Connection) -> dict[str, list[tuple[Any, ...]]]:
    tables = ["events", "jobs", "job_transitions", "workers", "queues", "rollups_minute"]
    return {t: sorted(db.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables}


def test_bad_events_are_rejected_by_index_and_good_ones_kept(
    db: psycopg.Connection, fixture_events_path: Path
) -> None:
    cid = connections.create_connection(db, "shop")
    good = normalized(fixture_events_path, cid)
    ingest.append(db, cid, good[:10])
    before = _snapshot(db)
    now = time.time()
    hostile: list[Any] = [
        {"kind": "job.sent", "timestamp": now, "job_id": "x\x00y"},
        {"kind": "job.teleported", "timestamp": now, "job_id": "a"},
        {"kind": "job.sent", "timestamp": "soon", "job_id": "a"},
        {"kind": "job.sent", "timestamp": now, "job_id": "a", "name": "n" * 600},
        {"kind": "job.sent", "timestamp": now, "job_id": "a", "connection_id": "zzz"},
        {"kind": "worker.heartbeat", "timestamp": now},
        "not an object",
    ]
    only_bad = ingest.append(db, cid, [parse_event(h, now) for h in hostile])
    assert only_bad.accepted == 0
    assert [r.index for r in only_bad.rejected] == list(range(len(hostile)))
    assert [r.field for r in only_bad.rejected] == [
        "job_id", "kind", "timestamp", "name", "connection_id", "hostname", None]
    assert _snapshot(db) == before

    mixed = [parse_event(h, now) for h in hostile[:2]] + [
        parse_event(msgspec.to_builtins(e), now) for e in good[10:20]]
    result = ingest.append(db, cid, mixed)
    assert result.accepted == 10
    assert [r.index for r in result.rejected] == [0, 1]


def test_a_follower_never_misses_an_event_with_concurrent_appenders(
    fresh_db_url: str, fixture_events_path: Path
) -> None:
    import sys
    from pathlib import Path as P

    sys.path.insert(0, str(P(__file__).resolve().parents[2] / "bench"))
    import traffic

    from sluice.domain.celery import normalize

    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        cid = connections.create_connection(conn, "race")
    streams = [traffic.stream(600, seed=s) for s in (1, 2)]
    total = sum(len(s) for s in streams)
    seen: list[int] = []
    done = threading.Event()
    errors: list[BaseException] = []

    def appender(stream: list[dict[str, Any]]) -> None:
        try:
            with psycopg.connect(fresh_db_url, autocommit=True) as conn:
                for i in range(0, len(stream), 37):
                    batch = [normalize(r, cid) for r in stream[i:i + 37]]
                    ingest.append(conn, cid, [e for e in batch if isinstance(e, Event)])
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    def follower() -> None:
        last = 0
        with psycopg.connect(fresh_db_url, autocommit=True) as conn:
            while True:
                finished = done.is_set()
                for stored in event_log.read_from(conn, last, 200, connection_id=cid):
                    seen.append(stored.position)
                    last = stored.position
                if finished and len(seen) >= total:
                    return
                if finished and not event_log.read_from(conn, last, 1, connection_id=cid):
                    return

    threads = [threading.Thread(target=appender, args=(s,)) for s in streams]
    reader = threading.Thread(target=follower)
    reader.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    reader.join(timeout=60)
    assert not errors, errors
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        stored = [p for (p,) in conn.execute(
            "SELECT position FROM events WHERE connection_id = %s ORDER BY position", (cid,))]
    assert len(stored) == total
    assert seen == stored  # nothing committed behind the follower's back


def test_each_database_gets_its_own_partitions(pg_server: str, fresh_db_url: str) -> None:
    """Created partitions are remembered per database: another database on the same server
    (after fresh_db_url's were made and remembered) still gets its own."""
    today = partitions.partition_name(dt.datetime.now(dt.UTC).date())
    with new_database(pg_server) as other, psycopg.connect(other, autocommit=True) as conn:
        assert today not in event_partitions(conn)
        partitions.ensure_window(conn)
        assert today in event_partitions(conn)
