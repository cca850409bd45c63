"""GET /api/jobs and /api/jobs/{id} against real PostgreSQL, data ingested via the API."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from tests.integration.reads_support import client, ev, fixture_events, ingest, job, tenant

NOW = time.time()


def _ids(page: dict[str, Any]) -> list[str]:
    return [j["id"] for j in page["items"]]


def _get(c: TestClient[Litestar], headers: dict[str, str], **params: Any) -> dict[str, Any]:
    r = c.get("/api/jobs", params=params, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


@pytest.fixture
def seeded(fresh_db_url: str) -> Any:
    """Five jobs over states, queues, workers and names (newest last in this list)."""
    with client(fresh_db_url) as c:
        _, h = tenant(fresh_db_url, "a")
        events = [
            *job("aaaa-1", NOW - 100, name="app.tasks.add", queue="default", worker="w1@h"),
            *job("bbbb-2", NOW - 90, name="app.tasks.mul", queue="default", worker="w2@h",
                 outcome="job.failed", exception="ZeroDivisionError('division by zero')"),
            *job("cccc-3", NOW - 80, name="Reports.Generate", queue="reports", worker="w2@h",
                 outcome="job.started"),
            *job("aaab-4", NOW - 70, name="app.tasks.add", queue="reports", outcome=None),
            *job("dddd-5", NOW - 60, name="app.tasks.mul", queue="default", worker="w1@h",
                 outcome="job.retried", exception="TimeoutError('slow db')"),
        ]
        ingest(c, h, events)
        yield c, h


def test_list_newest_first_with_contract_fields(seeded: Any) -> None:
    c, h = seeded
    page = _get(c, h)
    assert _ids(page) == ["dddd-5", "aaab-4", "cccc-3", "bbbb-2", "aaaa-1"]
    assert page["next_cursor"] is None
    first = page["items"][-1]
    for field in ("id", "name", "state", "queue", "worker", "retries", "sent_at", "started_at",
                  "finished_at", "runtime", "exception"):
        assert field in first
    assert first["state"] == "completed" and first["runtime"] == 0.5
    assert first["sent_at"].endswith("Z")  # ISO-8601 UTC


FILTER_CASES: list[tuple[dict[str, Any], list[str]]] = [
    ({"state": "failed"}, ["bbbb-2"]),
    ({"state": ["failed", "retrying"]}, ["dddd-5", "bbbb-2"]),
    ({"state": "failed,active"}, ["cccc-3", "bbbb-2"]),
    ({"queue": "reports"}, ["aaab-4", "cccc-3"]),
    ({"worker": "w2@h"}, ["cccc-3", "bbbb-2"]),
    ({"name": "TASKS.A"}, ["aaab-4", "aaaa-1"]),
    ({"name": "report"}, ["cccc-3"]),
    ({"id": "aaa"}, ["aaab-4", "aaaa-1"]),
    ({"q": "zerodivision"}, ["bbbb-2"]),
    ({"q": "generate"}, ["cccc-3"]),
    ({"q": "dddd"}, ["dddd-5"]),
    ({"q": "dd-5"}, []),  # a job id matches by prefix
    ({"q": "100%"}, []),  # LIKE wildcards are literal
    ({"since": NOW - 85}, ["dddd-5", "aaab-4", "cccc-3"]),
    ({"until": NOW - 85}, ["bbbb-2", "aaaa-1"]),
    ({"since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW - 75)),
      "until": NOW - 65}, ["aaab-4"]),
    ({"state": "queued", "queue": "reports", "name": "add"}, ["aaab-4"]),
    ({"state": ["completed", "failed"], "worker": "w1@h"}, ["aaaa-1"]),
    ({"queue": "default", "q": "error"}, ["dddd-5", "bbbb-2"]),
    ({"queue": "default", "worker": "w1@h", "since": NOW - 95}, ["dddd-5"]),
    ({"state": "cancelled"}, []),
]


def test_each_filter_and_combinations(seeded: Any) -> None:
    c, h = seeded
    for params, expected in FILTER_CASES:
        assert _ids(_get(c, h, **params)) == expected, params


def test_facets_count_states_under_the_other_filters(seeded: Any) -> None:
    c, h = seeded
    page = _get(c, h, queue="default", state="failed", facets="true")
    assert _ids(page) == ["bbbb-2"]
    assert page["facets"]["failed"] == 1
    assert page["facets"]["completed"] == 1
    assert page["facets"]["retrying"] == 1
    assert page["facets"]["unknown"] == 0
    assert page["facets_cap"] >= 1000
    assert "facets" not in _get(c, h)


def test_facet_counts_stop_at_the_cap(seeded: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from sluice.views.jobs import reader as store

    monkeypatch.setattr(store, "FACET_CAP", 1)
    c, h = seeded
    page = _get(c, h, queue="default", facets="true")
    assert page["facets"]["failed"] == 1 and page["facets"]["completed"] == 1
    assert page["facets_cap"] == 1
    assert sum(_get(c, h, facets="true")["facets"].values()) == 5  # one job per state here


BAD_CASES: list[tuple[dict[str, Any], str]] = [
    ({"state": "exploded"}, "state"),
    ({"since": "yesterday"}, "since"),
    ({"until": "2026-13-01"}, "until"),
    ({"limit": 501}, "limit"),
    ({"limit": 0}, "limit"),
    ({"limit": "ten"}, "limit"),
    ({"cursor": "not-a-cursor"}, "cursor"),
    ({"facets": "maybe"}, "facets"),
]


def test_bad_parameters_are_400_with_field(seeded: Any) -> None:
    c, h = seeded
    for params, field in BAD_CASES:
        r = c.get("/api/jobs", params=params, headers=h)
        assert r.status_code == 400, (params, r.text)
        body = r.json()
        assert body["error"] == "bad_request" and body["detail"]
        assert body["field"] == field, (params, body)


def test_reads_need_a_read_key(fresh_db_url: str) -> None:
    with client(fresh_db_url) as c:
        _, ingest_only = tenant(fresh_db_url, "x", scopes=("ingest",))
        assert c.get("/api/jobs").status_code == 401
        assert c.get("/api/jobs", headers=ingest_only).status_code == 403
        assert c.get("/api/workers", headers=ingest_only).status_code == 403
        assert c.get("/api/events/stream", headers=ingest_only).status_code == 403


def test_pagination_has_no_duplicates_or_gaps_while_inserting(fresh_db_url: str) -> None:
    with client(fresh_db_url) as c:
        _, h = tenant(fresh_db_url, "a")
        # 150 jobs, some sharing a first-seen instant (the job id breaks the tie)
        original = {f"job-{i:04d}": NOW - 1000 + (i // 3) for i in range(150)}
        ingest(c, h, [e for jid, t in original.items()
                      for e in job(jid, t, outcome=None)])
        seen: list[str] = []
        cursor = None
        for page_no in range(100):
            params: dict[str, Any] = {"limit": 17}
            if cursor:
                params["cursor"] = cursor
            page = _get(c, h, **params)
            seen += _ids(page)
            # meanwhile: newer jobs, and older ones behind the cursor
            ingest(c, h, [*job(f"new-{page_no}", NOW - 10 + page_no, outcome=None),
                          *job(f"late-{page_no}", NOW - 2000 - page_no, outcome=None)])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == len(set(seen)), "a job was listed twice"
        assert set(original) <= set(seen), "a job present from the start was skipped"
        assert not any(s.startswith("new-") for s in seen)  # newer than page 1: not shifted in
        firsts = [original[s] for s in seen if s in original]
        assert firsts == sorted(firsts, reverse=True)


def test_detail_history_timing_links(fresh_db_url: str) -> None:
    with client(fresh_db_url) as c:
        _, h = tenant(fresh_db_url, "a")
        t = NOW - 500
        root = "root-1"
        events = [
            *job(root, t, name="flow.start", root_id=root),
            # a child that failed once, was retried and then succeeded
            ev("job.sent", t + 1, job_id="child-1", name="flow.step", queue="default",
               hostname="p@h", retries=0, parent_id=root, root_id=root, group_id="g1"),
            ev("job.received", t + 2, job_id="child-1", hostname="w1@h", retries=0),
            ev("job.started", t + 3, job_id="child-1", hostname="w1@h"),
            ev("job.retried", t + 4, job_id="child-1", hostname="w1@h",
               exception="IOError('flaky')", traceback="Traceback...\nIOError: flaky"),
            ev("job.received", t + 4.5, job_id="child-1", hostname="w1@h", retries=1,
               eta="2000-01-01T00:00:00+00:00"),
            ev("job.started", t + 5, job_id="child-1", hostname="w1@h"),
            ev("job.succeeded", t + 7, job_id="child-1", hostname="w1@h", runtime=2.0,
               result="'ok'"),
            *job("child-2", t + 1.5, name="flow.step", parent_id=root, root_id=root,
                 group_id="g1"),
        ]
        ingest(c, h, events)
        r = c.get("/api/jobs/child-1", headers=h)
        assert r.status_code == 200
        d = r.json()
        assert d["state"] == "completed" and d["retries"] == 1
        assert [x["state"] for x in d["history"]] == [
            "queued", "queued", "active", "retrying", "queued", "active", "completed"]
        assert [x["attempt"] for x in d["history"]] == [0, 0, 0, 0, 1, 1, 1]
        assert d["history"][3]["kind"] == "job.retried"
        assert d["history"][2]["hostname"] == "w1@h"
        assert d["timing"]["runtime"] == 2.0
        assert d["timing"]["queued"] == pytest.approx(2.5, abs=0.01)  # 2 + 0.5
        assert d["timing"]["total"] == pytest.approx(6.0, abs=0.01)
        assert d["parent"] == {"id": root, "name": "flow.start", "state": "completed"}
        assert d["root"]["id"] == root
        assert {g["id"] for g in d["group"]} == {"child-1", "child-2"}
        parent = c.get(f"/api/jobs/{root}", headers=h).json()
        assert [ch["id"] for ch in parent["children"]] == ["child-1", "child-2"]
        assert parent["root"]["id"] == root and parent["parent"] is None


def test_detail_of_a_failure_has_traceback(seeded: Any) -> None:
    c, h = seeded
    d = c.get("/api/jobs/bbbb-2", headers=h).json()
    assert d["state"] == "failed"
    assert d["exception"] == "ZeroDivisionError('division by zero')"
    assert d["traceback"].startswith("Traceback")


def test_unknown_id_is_200_unknown(seeded: Any) -> None:
    c, h = seeded
    r = c.get("/api/jobs/5f8e1f4c-0000-4000-8000-000000000000", headers=h)
    assert r.status_code == 200
    body = r.json()
    assert body["state"] == "unknown" and body["history"] == []
    assert body["id"] == "5f8e1f4c-0000-4000-8000-000000000000"


def test_fixture_jobs_through_the_api(fresh_db_url: str, fixture_events_path: Path) -> None:
    with client(fresh_db_url) as c:
        _, h = tenant(fresh_db_url, "a")
        ingest(c, h, fixture_events(fixture_events_path))
        page = _get(c, h, limit=500, facets=1)
        assert page["items"] and page["next_cursor"] is None
        assert sum(page["facets"].values()) == len(page["items"])
        for item in page["items"][:5]:
            d = c.get(f"/api/jobs/{item['id']}", headers=h).json()
            assert d["state"] == item["state"] and d["history"]
        failed = _get(c, h, state="failed")["items"]
        if failed:
            assert failed[0]["exception"]


def test_connection_isolation_for_jobs(seeded: Any, fresh_db_url: str) -> None:
    c, h = seeded
    _, other = tenant(fresh_db_url, "b")
    assert _get(c, h)["items"]
    assert _get(c, other)["items"] == []
    assert _get(c, other, facets="1")["facets"]["failed"] == 0
    assert c.get("/api/jobs/bbbb-2", headers=other).json()["state"] == "unknown"


@pytest.mark.parametrize(
    ("window", "scan", "trigram"),
    [(10_000, 20_000, None),  # found in the recent window
     (3, 20_000, None),  # via the trigram index (external) or one bounded scan (embedded)
     (3, 5, False)],  # bounded scans of 5 rows: pages with fewer jobs, the cursor goes on
)
def test_substring_pages_are_complete_in_order(
        fresh_db_url: str, window: int, scan: int, trigram: bool | None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from sluice.views.jobs import reader as store

    monkeypatch.setattr(store, "TEXT_WINDOW", window)
    monkeypatch.setattr(store, "SCAN_WINDOW", scan)
    if trigram is not None:
        monkeypatch.setattr(store, "_has_trigram", lambda conn: trigram)
    with client(fresh_db_url) as c:
        _, h = tenant(fresh_db_url, "a")
        events = []
        for i in range(40):
            name = "app.Needle.task" if i % 3 == 0 else "app.hay.task"
            events += job(f"s-{i:03d}", NOW - 400 + i, name=name, outcome=None)
        ingest(c, h, events)
        expected = [f"s-{i:03d}" for i in reversed(range(40)) if i % 3 == 0]
        for params in ({"name": "needle"}, {"q": "NEEDLE"}):
            seen: list[str] = []
            cursor = None
            while True:
                page = _get(c, h, limit=4, **params, **({"cursor": cursor} if cursor else {}))
                seen += _ids(page)
                cursor = page["next_cursor"]
                if cursor is None:
                    break
            assert seen == expected, params
