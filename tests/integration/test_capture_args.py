"""Arguments and results agree by path: the connection's capture_args setting is enforced by
the server for every source (off by default), and with capture on at both ends the SDK and
the agent carry the same fields, so one job fed through both paths, in either order, is the
same job."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import psycopg
import pytest

from sluice.agent.capture import Capture
from sluice.agent.forward import Forwarder
from sluice.agent.health import Health
from sluice.cli import main as cli_main
from sluice.domain.events import Event
from sluice.domain.privacy import MARKS_KEY, MASK, TRUNCATED, Rules
from sluice.sdk.config import SdkConfig
from sluice.sdk.runtime import Processor
from sluice.store import connections
from tests.integration.reads_support import client, ev, ingest, tenant

SECRETS = ("hunter2", "4111111111111111", "tok-9")


def celery_job(job_id: str, t0: float) -> list[dict[str, Any]]:
    """One job's Celery event dicts, as a producer and a worker send them."""
    args = "('ann', {'card': '4111111111111111', 'items': [1, 2]}, '" + "x" * 2000 + "')"
    kwargs = "{'password': 'hunter2', 'coupon': 'SPRING'}"
    common = {"uuid": job_id, "utcoffset": 0.0}
    return [
        {**common, "type": "task-sent", "name": "shop.pay", "args": args, "kwargs": kwargs,
         "queue": "default", "routing_key": "default", "exchange": "", "retries": 0,
         "eta": None, "expires": None, "root_id": job_id, "parent_id": None,
         "hostname": "gen1@vm", "pid": 11, "clock": 5, "timestamp": t0},
        {**common, "type": "task-received", "name": "shop.pay", "args": args,
         "kwargs": kwargs, "retries": 0, "eta": None, "expires": None, "root_id": job_id,
         "parent_id": None, "hostname": "w1@vm", "pid": 12, "clock": 9,
         "timestamp": t0 + 0.01},
        {**common, "type": "task-started", "hostname": "w1@vm", "pid": 13, "clock": 10,
         "timestamp": t0 + 0.02},
        {**common, "type": "task-succeeded", "result": "{'ok': True, 'token': 'tok-9'}",
         "runtime": 0.5, "hostname": "w1@vm", "pid": 13, "clock": 11,
         "timestamp": t0 + 0.52},
    ]


def envelope(body: dict[str, Any]) -> bytes:
    """The kombu envelope a Redis broker carries it in (what the agent reads)."""
    data = base64.b64encode(json.dumps(body).encode()).decode()
    return json.dumps({"body": data, "content-type": "application/json",
                       "properties": {"body_encoding": "base64"}}).encode()


class Sink:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def submit(self, event: Event) -> None:
        self.events.append(event)

    def stats(self) -> dict[str, int]:
        return {}


def by_sdk(cid: str, raws: list[dict[str, Any]], capture: bool) -> list[Event]:
    proc = Processor(SdkConfig(api_key="k", connection_id=cid, endpoint="http://x",
                               capture_args=capture))
    out = [proc(dict(raw)) for raw in raws]
    assert all(e is not None for e in out)
    return [e for e in out if e is not None]


def by_agent(cid: str, raws: list[dict[str, Any]], capture: bool) -> list[Event]:
    sink = Sink()
    forward = Forwarder(sink, Health(), cid, Capture(capture, Rules()))
    for raw in raws:
        forward.envelope(envelope(raw))
    assert len(sink.events) == len(raws)
    return sink.events


def test_one_job_through_both_paths_in_both_orders_is_the_same_job(
        fresh_db_url: str) -> None:
    raws = celery_job("job-both", time.time() - 5)
    jobs: dict[tuple[bool, str], dict[str, Any]] = {}
    with client(fresh_db_url) as c:
        for capture in (True, False):
            for order in ("sdk-first", "agent-first"):
                cid, headers = tenant(fresh_db_url, f"{order}-{capture}")
                with psycopg.connect(fresh_db_url, autocommit=True) as conn:
                    connections.set_capture_args(conn, cid, capture)
                sdk, agent = by_sdk(cid, raws, capture), by_agent(cid, raws, capture)
                assert [e.dedup_key for e in sdk] == [e.dedup_key for e in agent]
                first, second = (sdk, agent) if order == "sdk-first" else (agent, sdk)
                assert ingest(c, headers, first)["accepted"] == 4
                assert ingest(c, headers, second)["duplicates"] == 4
                r = c.get("/api/jobs/job-both", headers=headers)
                assert r.status_code == 200
                jobs[capture, order] = r.json()
    captured = jobs[True, "sdk-first"]
    assert captured == jobs[True, "agent-first"]
    assert captured["state"] == "completed"
    text = captured["args"] + captured["kwargs"] + captured["result"]
    assert not any(secret in text for secret in SECRETS)
    assert f"'card': {MASK!r}" in captured["args"] and captured["args"].endswith(TRUNCATED)
    assert captured["kwargs"] == f"{{'password': {MASK!r}, 'coupon': 'SPRING'}}"
    assert captured["result"] == f"{{'ok': True, 'token': {MASK!r}}}"
    # stripped at both ends: the same job again, without them
    bare = jobs[False, "sdk-first"]
    assert bare == jobs[False, "agent-first"]
    assert (bare["args"], bare["kwargs"], bare["result"]) == (None, None, None)
    assert {k: v for k, v in bare.items() if k not in ("args", "kwargs", "result")} == {
        k: v for k, v in captured.items() if k not in ("args", "kwargs", "result")}


def payloads(url: str, cid: str) -> list[dict[str, Any]]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT payload::text FROM events WHERE connection_id = %s "
                            "ORDER BY position", (cid,)).fetchall()
    return [json.loads(r[0]) for r in rows]


def test_the_server_keeps_arguments_only_when_the_connection_allows_it(
        fresh_db_url: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SLUICE_DATABASE_URL", fresh_db_url)
    now = time.time()

    def job(job_id: str) -> list[Event]:
        marks = {MARKS_KEY: {"kwargs": ["redacted"]}}
        return [ev("job.received", now, job_id=job_id, hostname="w@h", name="t.x",
                   args="(1, 2)", kwargs=f"{{'password': {MASK!r}}}", extensions=marks),
                ev("job.succeeded", now + 1, job_id=job_id, hostname="w@h", result="3",
                   runtime=1.0)]

    with client(fresh_db_url) as c:
        cid, headers = tenant(fresh_db_url, "prod")
        with psycopg.connect(fresh_db_url, autocommit=True) as conn:
            found = connections.get_connection(conn, cid)
            assert found is not None and found.capture_args is False  # off by default
        ingest(c, headers, job("off-1"))
        got = c.get("/api/jobs/off-1", headers=headers).json()
        assert (got["args"], got["kwargs"], got["result"]) == (None, None, None)
        stored = payloads(fresh_db_url, cid)
        assert len(stored) == 2
        assert not any({"args", "kwargs", "result"} & p.keys() for p in stored)
        assert not any(MARKS_KEY in p.get("extensions", {}) for p in stored)

        assert cli_main(["connections", "set", cid, "--capture-args", "on"]) == 0
        capsys.readouterr()
        ingest(c, headers, job("on-1"))
        got = c.get("/api/jobs/on-1", headers=headers).json()
        assert (got["args"], got["kwargs"], got["result"]) == (
            "(1, 2)", f"{{'password': {MASK!r}}}", "3")
        assert payloads(fresh_db_url, cid)[2]["extensions"] == {
            MARKS_KEY: {"kwargs": ["redacted"]}}
        assert cli_main(["connections", "list", "--json"]) == 0
        [listed] = json.loads(capsys.readouterr().out)
        assert listed["capture_args"] is True

        assert cli_main(["connections", "set", cid, "--capture-args", "off"]) == 0
        ingest(c, headers, job("off-2"))
        got = c.get("/api/jobs/off-2", headers=headers).json()
        assert (got["args"], got["kwargs"], got["result"]) == (None, None, None)
    with pytest.raises(SystemExit):
        cli_main(["connections", "set", cid, "--capture-args", "maybe"])
    assert cli_main(["connections", "set", "0b6c3a4e-0000-4000-8000-000000000000",
                     "--capture-args", "on"]) == 2
