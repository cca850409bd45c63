"""Commands end to end: a real `sluice serve` (its executor acting on the broker), a real
Redis broker, real Celery workers, and the agent reporting what they do."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest
import redis

from sluice.agent.executor import BrokerExecutor
from sluice.domain.commands import Spec, new_job_id
from tests import commands_celery_app as tasks
from tests.conftest import new_database
from tests.integration.agent_support import agent_thread, wait_until
from tests.integration.commands_support import (
    command_worker,
    key_headers,
    operator,
    redis_broker,
    wait_for,
)
from tests.integration.reads_support import serve

pytestmark = pytest.mark.timeout(180)


@dataclass
class Stack:
    url: str
    base: str
    broker: str
    connection_id: str
    headers: dict[str, str]
    prefix: str
    hostname: str

    def get(self, path: str, **params: Any) -> Any:
        r = httpx.get(self.base + path, headers=self.headers, params=params, timeout=10)
        assert r.status_code == 200, r.text
        return r.json()

    def post(self, path: str, body: Any = None) -> httpx.Response:
        return httpx.post(self.base + path, headers=self.headers, json=body, timeout=10)

    def job(self, job_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self.get(f"/api/jobs/{job_id}")
        return found

    def job_in(self, job_id: str, *states: str, timeout: float = 20) -> dict[str, Any]:
        found: dict[str, Any] = wait_for(lambda: self.job(job_id),
                                         lambda j: j["state"] in states, timeout)
        return found

    def listening(self) -> None:
        """Wait until this connection's agent, started now, reports a heartbeat of the
        worker sent after this call: it is subscribed, so it misses none of the events
        that follow."""
        since = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=0.5)

        def fresh(ws: list[dict[str, Any]]) -> bool:
            return any(w["hostname"] == self.hostname and w["last_heartbeat"] and
                       dt.datetime.fromisoformat(w["last_heartbeat"].replace("Z", "+00:00"))
                       > since for w in ws)

        wait_for(lambda: self.get("/api/workers")["items"], fresh, 30)

    def finished(self, command_id: str, timeout: float = 20) -> dict[str, Any]:
        found: dict[str, Any] = wait_for(lambda: self.get(f"/api/commands/{command_id}"),
                                         lambda c: c["status"] in ("succeeded", "failed"),
                                         timeout)
        return found


@pytest.fixture(scope="module")
def stack(pg_server: str) -> Iterator[Stack]:
    prefix = f"cmd-{uuid.uuid4().hex[:8]}-"
    hostname = f"cmdworker-{uuid.uuid4().hex[:6]}@host"
    with new_database(pg_server) as url, redis_broker() as broker, serve(url) as base:
        cid, headers = operator(url, broker_url=broker, result_backend_url=broker)
        ingest_key = key_headers(url, cid, "ingest")["Authorization"].split()[1]
        tasks.configure(broker, prefix)
        with command_worker(broker, prefix, hostname) as worker, \
                agent_thread(broker, base, ingest_key, cid, queue_interval=1.0, workers=0):
            stack = Stack(url, base, broker, cid, headers, prefix, hostname)
            assert wait_until(lambda: any(w["hostname"] == hostname
                                          for w in stack.get("/api/workers")["items"]),
                              30), worker.log()
            yield stack


def test_revoke_with_terminate_cancels_a_running_task(stack: Stack) -> None:
    job_id = tasks.sleep.delay(60).id
    stack.job_in(job_id, "active")
    r = stack.post(f"/api/jobs/{job_id}/revoke", {"terminate": True, "signal": "SIGTERM"})
    assert r.status_code == 202, r.text
    started = time.monotonic()
    command = stack.finished(r.json()["command_id"])
    assert command["status"] == "succeeded", command
    job = stack.job_in(job_id, "cancelled", timeout=15)
    assert time.monotonic() - started < 15
    assert [t["kind"] for t in job["history"]][-2:] in (
        ["command.revoke", "job.revoked"], ["job.revoked", "command.revoke"])


def test_a_revoked_countdown_task_never_runs(stack: Stack) -> None:
    key = f"ran-{uuid.uuid4().hex}"
    job_id = tasks.mark.apply_async((key,), countdown=4).id
    stack.job_in(job_id, "scheduled")
    r = stack.post(f"/api/jobs/{job_id}/revoke")
    assert r.status_code == 202
    assert stack.finished(r.json()["command_id"])["status"] == "succeeded"
    job = stack.job_in(job_id, "cancelled", timeout=20)  # the worker drops it at its ETA
    time.sleep(1)
    assert redis.Redis.from_url(stack.broker).get(key) is None
    assert "job.started" not in [t["kind"] for t in job["history"]]


def test_retry_of_a_failed_task_completes_and_links_both_ways(stack: Stack) -> None:
    key = f"flaky-{uuid.uuid4().hex}"
    job_id = tasks.flaky.delay(key, 42).id
    stack.job_in(job_id, "failed")
    r = stack.post(f"/api/jobs/{job_id}/retry")
    assert r.status_code == 202
    command_id = r.json()["command_id"]
    command = stack.finished(command_id)
    assert command["status"] == "succeeded", command
    new_id = command["new_job_id"]
    assert new_id == new_job_id(command_id)
    new = stack.job_in(new_id, "completed")
    assert new["retried_from"] == job_id and new["name"] == "cmdapp.flaky"
    old = stack.job(job_id)
    assert old["retried_as"] == new_id and old["state"] == "failed"
    for job in (old, new):
        [entry] = [t for t in job["history"] if t["kind"] == "command.retry"]
        assert entry["command_id"] == command_id and entry["state"] == "succeeded"
        assert entry["requested_by"].startswith("key:") and entry["new_job_id"] == new_id
    assert tasks.app.AsyncResult(new_id).get(timeout=10) == 42  # the original arguments

    # a re-run of the command (a crash between publish and commit) publishes the same id
    # again: Sluice shows one job
    spec = Spec(command_id=command_id, action="retry", job_id=job_id, task_name="cmdapp.flaky",
                queue=stack.prefix + "default", new_job_id=new_id)
    executor = BrokerExecutor(stack.broker, stack.broker)
    try:
        [again] = executor.execute([spec])
    finally:
        executor.close()
    assert again.ok and again.new_job_id == new_id
    wait_for(lambda: stack.job(new_id)["history"],
             lambda h: sum(t["kind"] == "job.succeeded" for t in h) == 2)
    listed = stack.get("/api/jobs", q=new_id)["items"]
    assert [j["id"] for j in listed] == [new_id]
    with psycopg.connect(stack.url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM jobs WHERE job_id = %s",
                            (new_id,)).fetchone() == (1,)
        outcomes = conn.execute(
            "SELECT count(*) FROM system_events WHERE dedup_key = %s",
            (f"cmd.{command_id}.end",)).fetchone()
    assert outcomes == (1,)


def test_retry_without_known_arguments_fails_with_the_setting_to_turn_on(
        stack: Stack) -> None:
    # no result backend on this connection, and no complete captured arguments (the agent
    # sends none unless told to; had it, Celery cuts a repr this long)
    cid, headers = operator(stack.url, "no-backend", broker_url=stack.broker)
    ingest_key = key_headers(stack.url, cid, "ingest")["Authorization"].split()[1]
    other = Stack(stack.url, stack.base, stack.broker, cid, headers, stack.prefix,
                  stack.hostname)
    with agent_thread(stack.broker, stack.base, ingest_key, cid, workers=0):
        other.listening()
        job_id = tasks.fail.delay("x" * 3000).id
        other.job_in(job_id, "failed")
    r = other.post(f"/api/jobs/{job_id}/retry")
    command = other.finished(r.json()["command_id"])
    assert command["status"] == "failed"
    assert "result_extended" in command["reason"] and "capture" in command["reason"]
    assert command["new_job_id"] is None
    assert other.job(job_id)["retried_as"] is None


def test_pool_grow_and_rate_limit_are_seen_by_the_worker(stack: Stack) -> None:
    h = stack.hostname

    def stats() -> Any:
        return stack.get(f"/api/workers/{h}/inspect/stats")

    before = stats()
    assert before["replied"] and before["reply"]["pool"]["max-concurrency"] == 2
    again = stats()  # within the cache's lifetime: the same answer, no new broadcast
    assert again["age_s"] > 0 and again["reply"]["pid"] == before["reply"]["pid"]

    r = stack.post(f"/api/workers/{h}/pool", {"action": "grow", "n": 1})
    assert r.status_code == 202, r.text
    command = stack.finished(r.json()["command_id"])
    assert command["status"] == "succeeded" and h in command["result"], command
    assert command["action"] == "pool_grow" and command["hostname"] == h
    wait_for(stats, lambda s: len(s["reply"]["pool"]["processes"]) == 3, timeout=20)

    r = stack.post("/api/tasks/cmdapp.add/limits", {"rate_limit": "10/m"})
    assert r.status_code == 202, r.text
    assert stack.finished(r.json()["command_id"])["status"] == "succeeded"
    registered = wait_for(lambda: stack.get(f"/api/workers/{h}/inspect/registered"),
                          lambda a: "cmdapp.add [rate_limit=10/m]" in (a["reply"] or []),
                          timeout=20)
    assert registered["replied"]

    # a control no worker answers fails with the reason
    r = stack.post("/api/workers/nobody@nowhere/pool", {"action": "shrink"})
    command = stack.finished(r.json()["command_id"])
    assert command["status"] == "failed" and "no reply from nobody@nowhere" in command["reason"]
    # bad requests and scopes
    assert stack.post(f"/api/workers/{h}/pool", {"action": "grow", "n": 0}).status_code == 400
    assert stack.post("/api/tasks/cmdapp.add/limits", {"rate_limit": "fast"}).status_code == 400
    r = httpx.get(f"{stack.base}/api/workers/{h}/inspect/secrets", headers=stack.headers)
    assert r.status_code == 400 and r.json()["field"] == "what"
    reader = key_headers(stack.url, stack.connection_id, "read")
    assert httpx.get(f"{stack.base}/api/workers/{h}/inspect/active_queues",
                     headers=reader, timeout=10).status_code == 200
    assert httpx.post(f"{stack.base}/api/workers/{h}/pool", json={"action": "grow"},
                      headers=reader, timeout=10).status_code == 403
    assert stack.post(f"/api/workers/{h}/shutdown").status_code == 403  # admin only
    assert stack.post(f"/api/queues/{stack.prefix}default/purge",
                      {"confirm": True}).status_code == 403


def test_send_a_task_by_name_and_purge_with_a_confirmation(stack: Stack) -> None:
    r = stack.post("/api/tasks/cmdapp.add/send", {"args": [20, 22],
                                                 "queue": stack.prefix + "default"})
    assert r.status_code == 202, r.text
    command = stack.finished(r.json()["command_id"])
    assert command["status"] == "succeeded" and command["new_job_id"]
    job = stack.job_in(command["new_job_id"], "completed")
    assert job["name"] == "cmdapp.add"
    assert tasks.app.AsyncResult(command["new_job_id"]).get(timeout=10) == 42

    admin = key_headers(stack.url, stack.connection_id, "admin")
    queue = f"{stack.prefix}idle"
    client = redis.Redis.from_url(stack.broker)
    for i in range(3):
        tasks.add.apply_async((i, i), queue=queue)
    r = httpx.post(f"{stack.base}/api/queues/{queue}/purge", headers=admin, timeout=10)
    assert r.status_code == 200 and r.json()["confirm"] is False
    assert client.llen(queue) == 3  # nothing purged without the confirmation
    r = httpx.post(f"{stack.base}/api/queues/{queue}/purge", headers=admin,
                   json={"confirm": True}, timeout=10)
    assert r.status_code == 202
    command = stack.finished(r.json()["command_id"])
    assert command["status"] == "succeeded" and command["result"] == {"purged": 3}
    assert client.llen(queue) == 0


def test_the_agent_executes_commands_next_to_the_broker(stack: Stack) -> None:
    # a connection whose broker the server does not know: only an agent can act on it
    cid, headers = operator(stack.url, "saas")
    key = key_headers(stack.url, cid, "ingest", "read", "operate")["Authorization"].split()[1]
    saas = Stack(stack.url, stack.base, stack.broker, cid, headers, stack.prefix,
                 stack.hostname)
    with agent_thread(stack.broker, stack.base, key, cid, workers=0):  # read-only agent
        saas.listening()
        job_id = tasks.sleep.apply_async((0.1,), countdown=30).id
        saas.job_in(job_id, "scheduled")
        time.sleep(2)  # had it asked for commands, the server would know it by now
        r = saas.post(f"/api/jobs/{job_id}/revoke")
        assert r.status_code == 409 and r.json()["error"] == "no_broker"
        assert saas.get("/api/connection")["executor"] is None
    with agent_thread(stack.broker, stack.base, key, cid, workers=0, execute_commands=True,
                      result_backend=stack.broker):
        wait_for(lambda: saas.get("/api/connection")["executor"], lambda e: e == "agent")
        saas.listening()
        key_ran = f"ran-{uuid.uuid4().hex}"
        mark_id = tasks.mark.apply_async((key_ran,), countdown=4).id
        saas.job_in(mark_id, "scheduled")
        r = saas.post(f"/api/jobs/{mark_id}/revoke")
        assert r.status_code == 202, r.text
        command = saas.finished(r.json()["command_id"])
        assert command["status"] == "succeeded" and command["claimed_by"].startswith("agent@")
        saas.job_in(mark_id, "cancelled", timeout=20)
        assert redis.Redis.from_url(stack.broker).get(key_ran) is None

        flaky_key = f"flaky-{uuid.uuid4().hex}"
        failed_id = tasks.flaky.delay(flaky_key, 7).id
        saas.job_in(failed_id, "failed")
        r = saas.post(f"/api/jobs/{failed_id}/retry")
        command = saas.finished(r.json()["command_id"])
        assert command["status"] == "succeeded", command
        saas.job_in(command["new_job_id"], "completed")
        assert saas.job(command["new_job_id"])["retried_from"] == failed_id
    with psycopg.connect(stack.url, autocommit=True) as conn:
        kinds = [k for (k,) in conn.execute(
            "SELECT kind FROM system_events WHERE connection_id = %s ORDER BY position",
            (cid,))]
    assert kinds == ["command.requested", "command.running", "command.succeeded"] * 2
