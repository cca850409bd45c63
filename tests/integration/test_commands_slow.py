"""Commands under faults (slow): revokes a restarted worker forgot are sent to it again, and
two `serve` processes, one killed -9 mid-bulk, carry out every job's command exactly once."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import psycopg
import pytest
import redis

from sluice.domain.commands import new_job_id
from sluice.domain.events import Event
from sluice.domain.validate import with_dedup_key
from sluice.service import ingest
from tests import commands_celery_app as tasks
from tests.integration.agent_support import agent_thread
from tests.integration.commands_support import (
    Server,
    command_worker,
    key_headers,
    operator,
    redis_broker,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def _get(base: str, headers: dict[str, str], path: str) -> dict[str, object]:
    r = httpx.get(base + path, headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    found: dict[str, object] = r.json()
    return found


def test_revokes_are_sent_again_to_a_worker_that_comes_back(fresh_db_url: str) -> None:
    prefix = f"resend-{uuid.uuid4().hex[:8]}-"
    hostname = f"resend-{uuid.uuid4().hex[:6]}@host"
    with redis_broker() as broker:
        server = Server(fresh_db_url)
        try:
            cid, h = operator(fresh_db_url, broker_url=broker, result_backend_url=broker)
            ingest_key = key_headers(fresh_db_url, cid, "ingest")["Authorization"].split()[1]
            tasks.configure(broker, prefix, visibility_timeout=4)
            key = f"ran-{uuid.uuid4().hex}"

            def job() -> dict[str, object]:
                return _get(server.base, h, f"/api/jobs/{job_id}")

            with agent_thread(broker, server.base, ingest_key, cid, workers=0):
                with command_worker(broker, prefix, hostname, visibility_timeout=4) as first:
                    job_id = tasks.mark.apply_async((key,), countdown=25).id
                    wait_for(job, lambda j: j["state"] == "scheduled", 30)
                    r = httpx.post(f"{server.base}/api/jobs/{job_id}/revoke", headers=h)
                    command_id = r.json()["command_id"]
                    wait_for(lambda: _get(server.base, h, f"/api/commands/{command_id}"),
                             lambda c: c["status"] == "succeeded")
                    first.kill()  # it forgets the revoke; its reserved message comes back
                with command_worker(broker, prefix, hostname, visibility_timeout=4) as again:
                    done = wait_for(job, lambda j: j["state"] == "cancelled", 60)
                    assert "job.started" not in [t["kind"] for t in done["history"]], \
                        again.log()
                    time.sleep(1)
            assert redis.Redis.from_url(broker).get(key) is None  # it never ran
            with psycopg.connect(fresh_db_url, autocommit=True) as conn:
                resent = conn.execute(
                    "SELECT hostname, payload->'extensions'->'command_ids' FROM system_events"
                    " WHERE kind = 'command.resent'").fetchall()
            assert resent and all(host == hostname for host, _ in resent)
            assert all(command_id in ids for _, ids in resent)
        finally:
            server.stop()


def _failed_jobs(url: str, cid: str, n: int, queue: str) -> list[str]:
    job_ids = [str(uuid.uuid4()) for _ in range(n)]
    t0 = time.time() - 600
    with psycopg.connect(url, autocommit=True) as conn:
        for start in range(0, n, 2000):
            events = []
            for i, job_id in enumerate(job_ids[start:start + 2000], start):
                events += [with_dedup_key(Event(
                    kind="job.sent", timestamp=t0 + i * 1e-3, job_id=job_id, name="cmdapp.add",
                    queue=queue, hostname="producer@h", clock=2 * i, args=f"({i}, 1)",
                    kwargs="{}")),
                    with_dedup_key(Event(kind="job.failed", timestamp=t0 + i * 1e-3 + 0.5,
                                         job_id=job_id, hostname="w@h", clock=2 * i + 1,
                                         exception="ValueError()"))]
            ingest.append(conn, cid, events)
    return job_ids


def _holds_executor(url: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database()"
            " AND a.application_name = 'sluice processors'").fetchone()
    return bool(row and row[0])


def test_two_servers_one_killed_mid_bulk_handle_every_job_once(fresh_db_url: str) -> None:
    n = 6000
    queue = f"bulk-{uuid.uuid4().hex[:8]}"
    with redis_broker() as broker:
        cid, h = operator(fresh_db_url, broker_url=broker)
        job_ids = _failed_jobs(fresh_db_url, cid, n, queue)
        first = Server(fresh_db_url)
        second: Server | None = None
        try:
            wait_for(lambda: _holds_executor(fresh_db_url), bool, 30)  # the first runs it
            second = Server(fresh_db_url)
            r = httpx.post(f"{second.base}/api/jobs/actions", headers=h, timeout=60,
                           json={"action": "retry", "filter": {"queue": queue}})
            assert r.status_code == 202, r.text
            bulk_id = r.json()["command_id"]

            def progress() -> dict[str, int]:
                found = _get(second.base, h, f"/api/commands/{bulk_id}")["progress"]
                assert isinstance(found, dict)
                return found

            at_kill = wait_for(progress, lambda p: p["done"] >= 1000, 60, step=0.02)
            first.kill()
            assert at_kill["done"] < n, "the bulk was over before the kill"
            done = wait_for(lambda: _get(second.base, h, f"/api/commands/{bulk_id}"),
                            lambda c: c["status"] in ("succeeded", "failed"), 90)
        finally:
            first.stop()
            if second is not None:
                second.stop()
        client = redis.Redis.from_url(broker)
        published = [json.loads(m)["headers"]["id"] for m in client.lrange(queue, 0, -1)]
        client.delete(queue)
    assert done["status"] == "succeeded", done
    assert done["progress"] == {"total": n, "done": n, "succeeded": n, "failed": 0,
                                "running": 0}
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        outcomes = conn.execute(
            "SELECT payload->'extensions'->>'command_id', kind FROM system_events "
            "WHERE connection_id = %s AND kind IN ('command.succeeded', 'command.failed')",
            (cid,)).fetchall()
        children = dict(conn.execute(
            "SELECT job_id, command_id FROM commands WHERE bulk_id = %s", (bulk_id,)).fetchall())
    ids = [c for c, _ in outcomes]
    assert len(ids) == len(set(ids)) == n + 1  # one outcome per job's command, and the bulk's
    assert {k for _, k in outcomes} == {"command.succeeded"}
    assert set(children) == set(job_ids)
    # the broker holds every retry under its derived id; only the page in flight when the
    # first server died may have been published twice (the same id: one job)
    expected = {new_job_id(c) for c in children.values()}
    assert len(expected) == n and set(published) == expected
    assert len(published) - n <= 1000
