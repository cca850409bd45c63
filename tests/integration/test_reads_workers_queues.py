"""Workers (online / offline / lost), queues, series and the overview, via the API."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import psycopg

from sluice.views.workers.reader import status
from tests.integration.reads_support import client, ev, fixture_events, ingest, job, tenant


def _worker(hostname: str, ts: float, kind: str = "worker.heartbeat", freq: float = 2.0,
            **extra: Any) -> Any:
    return ev(kind, ts, hostname=hostname, freq=freq, active=1, processed=10,
              loadavg=[0.5, 0.4, 0.3], sw_ident="py-celery", sw_ver="5.7.0", sw_sys="Linux",
              pid=42, **extra)


def test_worker_status_online_offline_lost(fresh_db_url: str) -> None:
    now = time.time()
    with client(fresh_db_url) as c:
        _, h = tenant(fresh_db_url, "a")
        ingest(c, h, [
            _worker("fresh@h", now - 60, "worker.online", freq=10.0),
            _worker("fresh@h", now - 1, freq=10.0),  # expires 19 s from now: time for a slow CI
            # heartbeats stopped 10 s ago at freq 2 s: expired after 4 s (Celery's window)
            _worker("killed@h", now - 30, "worker.online"),
            _worker("killed@h", now - 10),
            # slow heartbeats (freq 60 s): 10 s of silence is still within 120 s
            _worker("slow@h", now - 10, freq=60.0),
            _worker("gone@h", now - 20),
            _worker("gone@h", now - 19, "worker.offline"),
            *job("j1", now - 30, worker="fresh@h", queue="q1"),
            *job("j2", now - 20, worker="fresh@h", queue="q2"),
            # its clock runs 90 s behind ours, but Sluice heard from it just now: alive
            _worker("skewed@h", now - 90),
        ])
        # liveness is judged on when Sluice received the last heartbeat (as Celery's State
        # does): make it 10 s ago for the killed worker, as if its heartbeats then stopped
        with psycopg.connect(fresh_db_url, autocommit=True) as db:
            db.execute("UPDATE workers SET last_received_at = now() - interval '10 seconds' "
                       "WHERE hostname = 'killed@h'")
        r = c.get("/api/workers", headers=h)
        assert r.status_code == 200
        by = {w["hostname"]: w for w in r.json()["items"]}
        assert {k: w["status"] for k, w in by.items()} == {
            "fresh@h": "online", "killed@h": "lost", "slow@h": "online", "gone@h": "offline",
            "skewed@h": "online"}
        fresh = by["fresh@h"]
        assert 0 <= fresh["heartbeat_age"] < 30
        assert fresh["active"] == 1 and fresh["processed"] == 10
        assert fresh["loadavg"] == [0.5, 0.4, 0.3]
        assert fresh["software"] == {"ident": "py-celery", "version": "5.7.0",
                                     "system": "Linux"}
        assert fresh["tasks_per_minute"] == 2 / 5
        assert fresh["queues"] == ["q1", "q2"]
        assert by["killed@h"]["heartbeat_age"] >= 10
        one = c.get("/api/workers/killed@h", headers=h)
        assert one.status_code == 200 and one.json()["status"] == "lost"
        missing = c.get("/api/workers/nobody@h", headers=h)
        assert missing.status_code == 404 and missing.json()["error"] == "not_found"


def test_lost_matches_celery_expiry_rule() -> None:
    import datetime as dt

    from celery.events.state import heartbeat_expires

    beat = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    expires = heartbeat_expires(beat.timestamp(), 2.0)
    just_before = dt.datetime.fromtimestamp(expires - 0.01, dt.UTC)
    just_after = dt.datetime.fromtimestamp(expires + 0.01, dt.UTC)
    assert status("online", beat, 2.0, just_before)[0] == "online"
    assert status("online", beat, 2.0, just_after)[0] == "lost"
    assert status("offline", beat, 2.0, just_after)[0] == "offline"
    assert status("online", beat, None, beat + dt.timedelta(seconds=119))[0] == "online"


def test_queues_depth_throughput_wait_and_series(fresh_db_url: str) -> None:
    now = time.time()
    minute = now // 60 * 60
    with client(fresh_db_url) as c:
        _, h = tenant(fresh_db_url, "a")
        jobs = []
        for i in range(10):  # finished in the previous complete minutes, wait = 1 s .. 10 s
            jobs += job(f"q-{i}", minute - 120 + i, queue="emails", wait=float(i + 1),
                        runtime=0.1, worker=f"w{i % 2}@h")
        jobs += job("f-1", minute - 100, queue="emails", outcome="job.failed", wait=1.0,
                    worker="w0@h")
        ingest(c, h, [
            *jobs,
            ev("queue.sampled", now - 30, queue="emails", depth=7, consumers=None),
            ev("queue.sampled", now - 5, queue="emails", depth=3, consumers=None),
            ev("queue.sampled", now - 5, queue="idle", depth=0, consumers=2),
        ])
        r = c.get("/api/queues", headers=h)
        assert r.status_code == 200
        by = {q["name"]: q for q in r.json()["items"]}
        assert set(by) == {"emails", "idle"}
        emails = by["emails"]
        assert emails["depth"] == 3  # the latest sample
        assert emails["consumers"] == 2  # no broker count: workers seen starting its jobs
        assert emails["throughput"] == 11 / 5
        assert 5 <= emails["wait_p50"] <= 6.5
        assert 9 <= emails["wait_p95"] <= 10.5
        assert by["idle"] == {**by["idle"], "depth": 0, "consumers": 2, "throughput": 0.0}
        one = c.get("/api/queues/emails", headers=h).json()
        assert one["name"] == "emails" and one["depth"] == 3
        assert c.get("/api/queues/nope", headers=h).status_code == 404

        series = c.get("/api/queues/emails/series", params={"window": "15m"}, headers=h)
        assert series.status_code == 200
        s = series.json()
        assert s["step_s"] == 60 and len(s["points"]) == 15
        assert sum(p["completed"] for p in s["points"]) == 10
        assert sum(p["failed"] for p in s["points"]) == 1
        assert 3 in [p["depth"] for p in s["points"][-2:]]  # the sample's minute may be past
        wide = c.get("/api/queues/emails/series", params={"window": "7d"}, headers=h).json()
        assert wide["step_s"] == 28 * 60 and len(wide["points"]) == 360
        bad = c.get("/api/queues/emails/series", params={"window": "forever"}, headers=h)
        assert bad.status_code == 400 and bad.json()["field"] == "window"


def test_overview(fresh_db_url: str) -> None:
    now = time.time()
    with client(fresh_db_url) as c:
        _, h = tenant(fresh_db_url, "a")
        events = []
        for i in range(6):
            events += job(f"ok-{i}", now - 600 - i, name="app.ok")
        for i in range(3):
            events += job(f"bad-{i}", now - 500 - i, name="app.flaky", outcome="job.failed")
        events += job("old-bad", now - 5 * 3600, name="app.old", outcome="job.failed")
        events += job("running", now - 30, outcome="job.started")
        events += job("waiting", now - 20, outcome=None)
        events += job("retry", now - 20, outcome="job.retried")
        ingest(c, h, events)
        r = c.get("/api/stats/overview", headers=h)
        assert r.status_code == 200, r.text
        o = r.json()
        hour, day = o["last_1h"]["counts"], o["last_24h"]["counts"]
        assert hour["completed"] == 6 and hour["failed"] == 3
        assert day["failed"] == 4
        assert hour["active"] == 1 and hour["queued"] == 1 and hour["retrying"] == 1
        assert o["last_1h"]["retried"] == 1
        assert o["last_1h"]["failure_rate"] == round(3 / 9, 4)
        assert len(o["throughput"]) == 60
        assert sum(p["completed"] for p in o["throughput"]) == 6
        assert o["top_failing"][0] == {"name": "app.flaky", "failed": 3, "finished": 3,
                                       "failure_rate": 1.0}
        assert [t["name"] for t in o["top_failing"]] == ["app.flaky", "app.old"]
        assert len(c.get("/api/stats/overview", params={"window": "3h"},
                         headers=h).json()["throughput"]) == 180


def test_fixture_workers_and_isolation(fresh_db_url: str, fixture_events_path: Path) -> None:
    with client(fresh_db_url) as c:
        _, a = tenant(fresh_db_url, "a")
        _, b = tenant(fresh_db_url, "b")
        ingest(c, a, [*fixture_events(fixture_events_path),
                      ev("queue.sampled", time.time(), queue="default", depth=1)])
        workers = c.get("/api/workers", headers=a).json()["items"]
        assert workers and all(w["status"] in ("offline", "lost") for w in workers)  # old
        assert c.get("/api/queues", headers=a).json()["items"]
        # the other connection's key sees none of it
        assert c.get("/api/workers", headers=b).json()["items"] == []
        assert c.get("/api/queues", headers=b).json()["items"] == []
        host = workers[0]["hostname"]
        assert c.get(f"/api/workers/{host}", headers=b).status_code == 404
        assert c.get("/api/queues/default", headers=b).status_code == 404
        ov = c.get("/api/stats/overview", headers=b).json()
        assert sum(ov["last_24h"]["counts"].values()) == 0 and ov["top_failing"] == []
