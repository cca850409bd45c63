"""The connection health report from what the log holds: GET /api/connection/health and
`sluice doctor` (heartbeats without task events, received without sent, silence, SDK and
agent both feeding with different capture, clock skew)."""

from __future__ import annotations

import json
import time
from typing import Any

import psycopg
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from sluice.cli import main as cli_main
from sluice.domain.events import Event
from sluice.store import connections
from tests.integration.reads_support import client, ev, ingest, tenant


def health(c: TestClient[Litestar], headers: dict[str, str], **params: str) -> dict[str, Any]:
    r = c.get("/api/connection/health", headers=headers, params=params)
    assert r.status_code == 200, r.text
    return dict(r.json())


def codes(report: dict[str, Any]) -> list[str]:
    return [f["code"] for f in report["findings"]]


def beats(host: str, t0: float, n: int, processed: list[int], **extra: Any) -> list[Event]:
    return [ev("worker.heartbeat", t0 + 2 * i, hostname=host, processed=processed[i],
               active=0, freq=2.0, **extra) for i in range(n)]


def test_findings_from_the_log(fresh_db_url: str) -> None:
    now = time.time()
    with client(fresh_db_url) as c:
        # a worker started without -E: heartbeats count processed tasks, no task events;
        # the producer does send task-sent, so jobs stay queued
        blind, blind_h = tenant(fresh_db_url, "no-E")
        ingest(c, blind_h, [
            *beats("w1@h", now - 60, 10, list(range(10)), source="agent"),
            *[ev("job.sent", now - 59 + i, job_id=f"b{i}", hostname="p@h", queue="q",
                 source="agent") for i in range(10)]])
        # producers without task_send_sent_event: workers receive jobs nobody announced
        _, unsent_h = tenant(fresh_db_url, "no-sent")
        jobs = []
        for i in range(6):
            jobs += [ev("job.received", now - 50 + i, job_id=f"u{i}", hostname="w@h"),
                     ev("job.started", now - 49.9 + i, job_id=f"u{i}", hostname="w@h"),
                     ev("job.succeeded", now - 49.5 + i, job_id=f"u{i}", hostname="w@h",
                        runtime=0.4)]
        ingest(c, unsent_h, [*beats("w@h", now - 60, 5, [0, 2, 4, 6, 6]), *jobs])
        # a healthy connection: every job sent, received, done; one source
        good, good_h = tenant(fresh_db_url, "good")
        done = []
        for i in range(6):
            done += [ev("job.sent", now - 40 + i, job_id=f"g{i}", hostname="p@h", queue="q",
                        source="sdk"),
                     ev("job.received", now - 39.9 + i, job_id=f"g{i}", hostname="w@h",
                        source="sdk"),
                     ev("job.succeeded", now - 39.5 + i, job_id=f"g{i}", hostname="w@h",
                        runtime=0.4, source="sdk")]
        ingest(c, good_h, [*beats("w@h", now - 60, 5, [0, 2, 4, 6, 6], source="sdk"), *done])
        # both sources, capture on for the connection but only the agent sends arguments;
        # and clocks: the worker runs 5 s behind the producer, another host 60 s ahead
        mixed, mixed_h = tenant(fresh_db_url, "mixed")
        with psycopg.connect(fresh_db_url, autocommit=True) as conn:
            connections.set_capture_args(conn, mixed, True)
        skewed = []
        for i in range(4):
            src = "sdk" if i % 2 else "agent"
            skewed += [ev("job.sent", now - 30 + i, job_id=f"m{i}", hostname="p@h",
                          queue="q", source=src, **({"args": "(1,)"} if src == "agent"
                                                     else {})),
                       ev("job.received", now - 35 + i, job_id=f"m{i}", hostname="late@h",
                          source=src)]
        skewed += beats("fast@h", now + 60, 3, [0, 0, 0], source="sdk")
        ingest(c, mixed_h, skewed)
        _, fresh_h = tenant(fresh_db_url, "fresh")

        report = health(c, blind_h)
        assert report["status"] == "error" and report["connection_id"] == blind
        [missing] = report["findings"]
        assert missing["code"] == "task_events_missing" and missing["severity"] == "error"
        assert "worker_send_task_events" in missing["setting"]
        assert missing["evidence"]["workers"] == [{
            "hostname": "w1@h", "heartbeats": 10, "task_events": 0, "processed": 9,
            "processed_in_window": 9, "jobs_recorded": False}]

        report = health(c, unsent_h)
        assert codes(report) == ["task_sent_missing"] and report["status"] == "warning"
        assert report["findings"][0]["evidence"] == {
            "received_jobs": 6, "unsent_jobs": 6, "sent_events": 0}

        report = health(c, good_h)
        assert (report["status"], report["findings"]) == ("ok", [])
        assert report["events"] == 23 and report["window_s"] == 900

        report = health(c, mixed_h)
        assert codes(report) == ["capture_args_mismatch", "clock_skew", "sdk_and_agent"]
        mismatch, skew, both = report["findings"]
        assert mismatch["evidence"]["agent"] == {"events": 4, "with_values": 2}
        assert mismatch["evidence"]["sdk"] == {"events": 4, "with_values": 0}
        [pair] = skew["evidence"]["producer_worker"]
        assert (pair["producer"], pair["worker"], pair["jobs"]) == ("p@h", "late@h", 4)
        assert pair["median_s"] == pytest.approx(-5.0, abs=0.01)
        assert skew["evidence"]["ahead_of_server"][0]["hostname"] == "fast@h"
        assert skew["evidence"]["ahead_of_server"][0]["ahead_s"] > 59
        assert both["evidence"] == {"sdk_events": 7, "agent_events": 4}

        assert codes(health(c, fresh_h)) == ["no_events"]

        # silence: the last events were stored half an hour ago
        with psycopg.connect(fresh_db_url, autocommit=True) as conn:
            conn.execute("UPDATE events SET ingested_at = ingested_at - interval '30 minutes'"
                         " WHERE connection_id = %s", (good,))
        report = health(c, good_h)
        assert codes(report) == ["no_recent_events"] and report["events"] == 0
        assert report["findings"][0]["evidence"]["silent_s"] == pytest.approx(1800, abs=60)
        assert codes(health(c, good_h, silence="1h")) == []
        assert health(c, good_h, window="1h", silence="1h")["events"] == 23

        # bad parameters name themselves; the report needs a key with the read scope
        r = c.get("/api/connection/health", headers=good_h, params={"window": "2d"})
        assert r.status_code == 400 and r.json()["field"] == "window"
        r = c.get("/api/connection/health", headers=good_h, params={"silence": "soon"})
        assert r.status_code == 400 and r.json()["field"] == "silence"
        assert c.get("/api/connection/health").status_code == 401
        _, ingest_only = tenant(fresh_db_url, "writer", scopes=("ingest",))
        assert c.get("/api/connection/health", headers=ingest_only).status_code == 403


def test_sluice_doctor(fresh_db_url: str, monkeypatch: pytest.MonkeyPatch,
                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SLUICE_DATABASE_URL", fresh_db_url)
    now = time.time()
    with client(fresh_db_url) as c:
        blind, blind_h = tenant(fresh_db_url, "no-E")
        ingest(c, blind_h, beats("w1@h", now - 20, 6, [0, 1, 2, 3, 4, 5]))
        quiet, quiet_h = tenant(fresh_db_url, "quiet")
        ingest(c, quiet_h, beats("w1@h", now - 20, 3, [0, 0, 0]))
    assert cli_main(["doctor", "--connection", blind, "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["connection_id"] == blind and report["status"] == "error"
    assert [f["code"] for f in report["findings"]] == ["task_events_missing"]

    assert cli_main(["doctor", "--connection", quiet, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["findings"] == []

    assert cli_main(["doctor"]) == 1
    text = capsys.readouterr().out
    assert f"connection {blind} (no-E): error" in text
    assert "ERROR    task_events_missing" in text and "fix: worker_send_task_events" in text
    assert f"connection {quiet} (quiet): ok" in text and "no finding" in text

    assert cli_main(["doctor", "--json", "--window", "1h"]) == 1
    assert len(json.loads(capsys.readouterr().out)) == 2
    assert cli_main(["doctor", "--connection", "0b6c3a4e-0000-4000-8000-000000000000"]) == 2
    with pytest.raises(SystemExit):
        cli_main(["doctor", "--window", "3d"])
