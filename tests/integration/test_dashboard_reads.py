"""The reads the dashboard's pages add: the overview over a range (every state, finishes per
bucket, runtime and wait percentiles, top failing), a job's workflow tree, a worker's
finishes per bucket."""

from __future__ import annotations

import time

import pytest

from tests.integration.reads_support import client, ev, ingest, job, tenant


def test_summary_over_each_range(fresh_db_url: str) -> None:
    now = time.time()
    _, key = tenant(fresh_db_url, "shop")
    events = []
    for i in range(4):  # within the hour: runtime 1..4 s, wait 0.5 s
        events += job(f"ok-{i}", now - 600 + i, runtime=1.0 + i, wait=0.5)
    events += job("bad", now - 500, name="app.tasks.charge", outcome="job.failed")
    events += job("old", now - 5 * 3600, runtime=9.0)  # in 24 h and 7 d, not in 1 h
    events += job("run", now - 100, outcome="job.started")
    events.append(ev("job.sent", now - 50, job_id="later", name="app.tasks.report",
                     queue="default", eta="2099-01-01T00:00:00+00:00"))
    with client(fresh_db_url) as c:
        ingest(c, key, events)
        hour = c.get("/api/stats/summary?range=1h", headers=key).json()
        day = c.get("/api/stats/summary?range=24h", headers=key).json()
        week = c.get("/api/stats/summary", params={"range": "7d"}, headers=key).json()
        bad = c.get("/api/stats/summary?range=2h", headers=key)
    assert bad.status_code == 400 and bad.json()["field"] == "range"
    assert set(hour["counts"]) == {"unknown", "queued", "scheduled", "active", "completed",
                                   "failed", "retrying", "cancelled"}
    assert (hour["counts"]["completed"], hour["counts"]["failed"]) == (4, 1)
    assert (hour["counts"]["active"], hour["counts"]["scheduled"]) == (1, 1)
    assert day["counts"]["completed"] == week["counts"]["completed"] == 5
    assert hour["failure_rate"] == pytest.approx(0.2)
    assert hour["runtime"]["sample"] == 4
    assert hour["runtime"]["p50"] == pytest.approx(2.5)
    assert hour["wait"]["p95"] == pytest.approx(0.5)
    assert [t["name"] for t in hour["top_failing"]] == ["app.tasks.charge"]
    for s, step in ((hour, 60), (day, 480), (week, 3360)):
        assert s["step_s"] == step and 0 < len(s["series"]) <= 181
        assert sum(p["completed"] for p in s["series"]) == s["counts"]["completed"]


def test_workflow_tree_and_worker_series(fresh_db_url: str) -> None:
    now = time.time()
    _, key = tenant(fresh_db_url, "shop")
    events = (job("root", now - 90, root_id="root")
              + job("a", now - 80, root_id="root", parent_id="root")
              + job("b", now - 79, root_id="root", parent_id="root", group_id="g")
              + job("c", now - 70, root_id="root", parent_id="a", worker="w2@host",
                    outcome="job.failed")
              + job("other", now - 60))
    with client(fresh_db_url) as c:
        ingest(c, key, events)
        tree = c.get("/api/jobs/c/workflow", headers=key).json()
        alone = c.get("/api/jobs/other/workflow", headers=key).json()
        never = c.get("/api/jobs/nope/workflow", headers=key).json()
        series = c.get("/api/workers/w1@host/series?window=15m", headers=key).json()
        w2 = c.get("/api/workers/w2@host/series", headers=key).json()
        wrong = c.get("/api/workers/w1@host/series?window=9d", headers=key)
    assert tree["root_id"] == "root" and not tree["truncated"]
    assert [(n["id"], n["parent_id"]) for n in tree["nodes"]] == [
        ("root", None), ("a", "root"), ("b", "root"), ("c", "a")]
    assert [n["id"] for n in alone["nodes"]] == ["other"]
    assert never == {"root_id": "nope", "nodes": [], "truncated": False}
    assert series["step_s"] == 60 and len(series["points"]) == 15
    assert sum(p["completed"] for p in series["points"]) == 4
    assert sum(p["failed"] for p in w2["points"]) == 1
    assert wrong.status_code == 400 and wrong.json()["field"] == "window"


def test_queue_wait_per_bucket(fresh_db_url: str) -> None:
    now = time.time()
    _, key = tenant(fresh_db_url, "shop")
    events = (job("w1", now - 300, queue="emails", wait=1.0)
              + job("w2", now - 290, queue="emails", wait=3.0)
              + job("w3", now - 100, queue="emails", wait=5.0, outcome="job.started")
              + job("other", now - 200, queue="default", wait=60.0)
              + job("waiting", now - 50, queue="emails", outcome=None))
    with client(fresh_db_url) as c:
        ingest(c, key, events)
        series = c.get("/api/queues/emails/wait?window=1h", headers=key).json()
        bad = c.get("/api/queues/emails/wait?window=soon", headers=key)
    assert series["step_s"] == 60 and series["sample"] == 5000
    assert sum(p["jobs"] for p in series["points"]) == 3  # started ones of this queue only
    waits = sorted((p["p50"], p["p95"]) for p in series["points"])
    assert max(p95 for _, p95 in waits) == pytest.approx(5.0)
    assert min(p50 for p50, _ in waits) <= 3.0
    assert bad.status_code == 400 and bad.json()["field"] == "window"
