"""GET /api/events/stream across two API processes on one database (like two `sluice serve`
replicas): LISTEN/NOTIFY fan-out, Last-Event-ID resume, kind filter, connection isolation."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from tests.integration.reads_support import SSE, client, ingest, job, serve, tenant

NOW = time.time()


def _open(http: httpx.Client, base: str, headers: dict[str, str], **params: Any
          ) -> tuple[Any, SSE]:
    """Open a stream and wait until it is subscribed (its first comment)."""
    cm = http.stream("GET", base + "/api/events/stream", headers=headers, params=params)
    response = cm.__enter__()
    assert response.status_code == 200, response.read()
    assert response.headers["content-type"].startswith("text/event-stream")
    sse = SSE(response)
    for line in sse._lines:  # ": connected" is sent once the subscription is registered
        if line.startswith(": connected"):
            break
    return cm, sse


def _take(sse: SSE, n: int) -> list[tuple[int | None, str, dict[str, Any]]]:
    out = []
    while len(out) < n:
        ident, event, data = sse.next()
        out.append((ident, event, json.loads(data)))
    return out


def test_two_processes_fan_out_resume_filter_and_isolation(fresh_db_url: str) -> None:
    _, a = tenant(fresh_db_url, "a")
    _, b = tenant(fresh_db_url, "b")
    timeout = httpx.Timeout(15.0)
    with serve(fresh_db_url) as ingest_api, serve(fresh_db_url) as read_api, \
            httpx.Client(timeout=timeout) as http, \
            httpx.Client(base_url=ingest_api, timeout=timeout) as writer:
        live_cm, live = _open(http, read_api, a)
        failed_cm, failed_only = _open(http, read_api, a, kind="job.failed")
        other_cm, other = _open(http, read_api, b)

        # 1. ingested through process 1, received by SSE clients of process 2
        first = job("j-1", NOW - 50) + job("j-2", NOW - 40, outcome="job.failed")
        ingest(writer, a, first)
        got = _take(live, len(first))
        ids = [i for i, _, _ in got]
        assert all(i is not None for i in ids) and ids == sorted(ids)
        assert sorted(d["dedup_key"] for _, _, d in got) == sorted(e.dedup_key for e in first)
        assert all(event == "message" for _, event, _ in got)

        # 2. the kind filter (prefix) passes only job.failed
        (fid, _, fdata), = _take(failed_only, 1)
        assert fdata["kind"] == "job.failed" and fdata["job_id"] == "j-2"
        assert fid in ids

        # 3. isolation: b's stream got nothing of a's; its first event is its own
        mine = job("b-1", NOW - 30)
        ingest(writer, b, mine)
        got_b = _take(other, len(mine))
        assert [d["job_id"] for _, _, d in got_b] == ["b-1"] * len(mine)

        # 4. Last-Event-ID: disconnect, miss events, reconnect and get exactly the missed ones
        last_seen = ids[-1]
        live_cm.__exit__(None, None, None)
        missed = job("j-3", NOW - 20) + job("j-4", NOW - 10, outcome="job.retried")
        ingest(writer, a, missed)
        ingest(writer, b, job("b-2", NOW - 5))  # another connection's: never resent to a
        resumed_cm, resumed = _open(http, read_api, {**a, "Last-Event-ID": str(last_seen)})
        got = _take(resumed, len(missed))
        assert [d["dedup_key"] for _, _, d in got] == [e.dedup_key for e in missed]
        assert all(i is not None and i > last_seen for i, _, _ in got)
        # ... and then continues live, with no duplicates of the catch-up
        later = job("j-5", NOW - 1, outcome=None)
        ingest(writer, a, later)
        (lid, _, ldata), = _take(resumed, 1)
        assert ldata["job_id"] == "j-5" and lid is not None and lid > got[-1][0]  # type: ignore[operator]

        # 5. ?last_event_id=0 replays the connection's whole log (here: from process 1)
        replay_cm, replay = _open(http, ingest_api, a, last_event_id=0)
        total = len(first) + len(missed) + len(later)
        all_a = _take(replay, total)
        assert {d["job_id"] for _, _, d in all_a} == {"j-1", "j-2", "j-3", "j-4", "j-5"}
        for cm in (failed_cm, other_cm, resumed_cm, replay_cm):
            cm.__exit__(None, None, None)


def test_stream_rejects_bad_last_event_id(fresh_db_url: str) -> None:
    with client(fresh_db_url) as c:
        _, a = tenant(fresh_db_url, "a")
        r = c.get("/api/events/stream", headers={**a, "Last-Event-ID": "abc"})
        assert r.status_code == 400 and r.json()["field"] == "Last-Event-ID"
