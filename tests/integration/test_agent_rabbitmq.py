"""The agent on RabbitMQ: a real worker's events arrive through the agent's private
auto-delete queue; depths and consumers come from passive declares.

Skipped when no RabbitMQ answers at amqp://guest:guest@127.0.0.1:5672// (a fresh machine
has none), unless SLUICE_TEST_RABBITMQ_URL is set: then it must run (CI)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator

import pytest
from kombu import Connection

from tests.integration.agent_support import (
    CaptureAPI,
    agent_thread,
    celery_worker,
    events_of,
    wait_until,
)

pytestmark = pytest.mark.timeout(120)

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672//"


def _reachable(url: str) -> bool:
    try:
        with Connection(url, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return True
    except Exception:
        return False


@pytest.fixture
def rabbit_url() -> str:
    url = os.environ.get("SLUICE_TEST_RABBITMQ_URL")
    if url:
        return url  # required: an unreachable broker fails the test, never skips it
    if not _reachable(DEFAULT_URL):
        pytest.skip(f"no RabbitMQ at {DEFAULT_URL} (set SLUICE_TEST_RABBITMQ_URL to require)")
    return DEFAULT_URL


@pytest.fixture
def api() -> Iterator[CaptureAPI]:
    capture = CaptureAPI()
    yield capture
    capture.close()


def test_rabbitmq_events_and_queue_depths(rabbit_url: str, api: CaptureAPI) -> None:
    from tests import agent_celery_app as tasks

    prefix = f"t{uuid.uuid4().hex[:6]}_"
    host = f"{prefix}w1@agenttest"
    idle = f"{prefix}idle"
    tasks.configure(rabbit_url, prefix)
    try:
        with agent_thread(rabbit_url, api.endpoint, queue_interval=0.5), \
                celery_worker(rabbit_url, prefix, host) as worker:
            assert wait_until(lambda: events_of(api, hostname=host), 40), worker.log()
            ok = tasks.add.delay(2, 3)
            bad = tasks.charge_card.delay(1001, 49.99)
            mail = tasks.send_email.delay("a@example.com", "hi")
            parked = [tasks.add.apply_async((i, i), queue=idle) for i in range(3)]

            def kinds(job: str) -> set[str]:
                return {e["kind"] for e in events_of(api, job_id=job)}

            assert wait_until(lambda: {"job.sent", "job.received", "job.started",
                                       "job.succeeded"} <= kinds(ok.id), 30), worker.log()
            assert wait_until(lambda: "job.failed" in kinds(bad.id), 30)
            assert wait_until(lambda: "job.succeeded" in kinds(mail.id), 30)
            assert all(kinds(p.id) == {"job.sent"} for p in parked)

            def sampled(queue: str, depth: int, consumers: int | None = None) -> bool:
                return any(e["depth"] == depth and (consumers is None
                                                    or e.get("consumers") == consumers)
                           for e in events_of(api, kind="queue.sampled", queue=queue))

            # Learned from task-sent events, measured by passive declare.
            assert wait_until(lambda: sampled(idle, 3, 0), 20)
            assert wait_until(lambda: sampled(f"{prefix}default", 0, 1), 20)
            assert wait_until(lambda: sampled(f"{prefix}emails", 0, 1), 20)

            # SIGKILL: no worker-offline is ever sent; heartbeats just stop (the server
            # then marks the worker lost). The agent must not invent anything.
            assert wait_until(lambda: events_of(api, kind="worker.heartbeat", hostname=host),
                              10)
            worker.proc.kill()
            worker.proc.wait(10)
            time.sleep(1.0)
            beats = len(events_of(api, kind="worker.heartbeat", hostname=host))
            time.sleep(4.5)  # more than two heartbeat periods (freq 2 s)
            assert len(events_of(api, kind="worker.heartbeat", hostname=host)) == beats
            assert not events_of(api, kind="worker.offline", hostname=host)
    finally:
        with Connection(rabbit_url) as conn:
            channel = conn.channel()
            for name in (idle, f"{prefix}default", f"{prefix}emails"):
                channel.queue_delete(name)
            channel.close()
    keys = [e["dedup_key"] for e in api.snapshot() if e.get("hostname") == host]
    assert len(keys) == len(set(keys))
    sample = events_of(api, kind="queue.sampled", queue=idle)[-1]
    assert sample["extensions"] == {"source": "agent", "broker": "amqp"}
