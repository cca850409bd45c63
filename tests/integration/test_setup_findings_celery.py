"""Missing Celery settings, seen for real: a worker started without -E and producers
without task_send_sent_event, watched by the agent and reported by the server's health
report (and logged by the agent itself)."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from sluice.store import connections, keys
from tests.integration.agent_support import (
    agent_thread,
    celery_worker,
    private_redis,
    wait_until,
)
from tests.integration.reads_support import serve

pytestmark = pytest.mark.timeout(150)


@pytest.fixture
def redis_url() -> Iterator[str]:
    env = os.environ.get("SLUICE_TEST_REDIS_URL")
    if env:
        yield env
        return
    with private_redis() as server:
        yield server.url


def test_workers_without_task_events_and_producers_without_sent_events(
        fresh_db_url: str, redis_url: str, caplog: pytest.LogCaptureFixture) -> None:
    from tests import agent_celery_app as tasks

    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        cid = connections.create_connection(conn, "first-hour")
        key = keys.create_key(conn, cid, ["ingest", "read"]).api_key
    prefix = f"t{uuid.uuid4().hex[:6]}_"
    blind, seeing = f"{prefix}blind@setup", f"{prefix}seeing@setup"
    caplog.set_level(logging.WARNING, "sluice.agent")
    headers = {"Authorization": f"Bearer {key}"}
    found: dict[str, Any] = {}

    def findings() -> set[str]:
        r = httpx.get(base + "/api/connection/health", headers=headers, timeout=10)
        found.update(r.json())
        return {f["code"] for f in r.json()["findings"]}

    with serve(fresh_db_url) as base, \
            agent_thread(redis_url, base, api_key=key, connection_id=cid, workers=0,
                         log_interval=0.5), \
            celery_worker(redis_url, prefix, blind, task_events=False,
                          queues=("default",)) as w1, \
            celery_worker(redis_url, prefix, seeing, queues=("emails",)) as w2:
        tasks.configure(redis_url, prefix)
        tasks.app.conf.task_send_sent_event = False  # producers as Celery ships them
        for i in range(5):
            tasks.add.delay(i, i)
        for i in range(12):
            tasks.send_email.delay(f"u{i}@x", "hi")

        def settled() -> bool:
            if not {"task_events_missing", "task_sent_missing"} <= findings():
                return False
            by_code = {f["code"]: f["evidence"] for f in found["findings"]}
            return (by_code["task_events_missing"]["workers"][0]["processed"] == 5
                    and by_code["task_sent_missing"]["unsent_jobs"] == 12)

        assert wait_until(settled, 40, step=0.5), (found, w1.log(), w2.log())
        logged = " ".join(r.getMessage() for r in caplog.records)
        assert wait_until(lambda: "[task_events_missing]" in " ".join(
            r.getMessage() for r in caplog.records), 10), logged
        assert wait_until(lambda: "[task_sent_missing]" in " ".join(
            r.getMessage() for r in caplog.records), 10), logged
        jobs = httpx.get(base + "/api/jobs", headers=headers, params={"limit": 100}).json()
    by_code = {f["code"]: f for f in found["findings"]}
    [silent] = by_code["task_events_missing"]["evidence"]["workers"]
    assert silent["hostname"] == blind and silent["processed"] == 5
    assert by_code["task_sent_missing"]["evidence"]["sent_events"] == 0
    assert by_code["task_sent_missing"]["evidence"]["unsent_jobs"] == 12
    # the blind worker's jobs are nowhere; the other's have no queue (no task-sent)
    assert {j["worker"] for j in jobs["items"]} == {seeing}
    assert all(j["queue"] is None for j in jobs["items"])
    setup_lines = [r for r in caplog.records if "celery setup" in r.getMessage()]
    assert len(setup_lines) == 2  # each logged once
