"""The agent on real Redis: a real Celery worker's scenario arrives through the real
Transport while the agent runs as a read-only ACL user; queue depths match LLEN; a Redis
restart under the agent is survived."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis

from tests.integration.agent_support import (
    CaptureAPI,
    RedisServer,
    agent_thread,
    celery_worker,
    events_of,
    private_redis,
    wait_until,
)

pytestmark = pytest.mark.timeout(150)

SEP = "\x06\x16"
# What the agent needs, and nothing that writes: subscribe to events, find and measure queues.
READ_ONLY_ACL = ["-@all", "+psubscribe", "+ping", "+scan", "+smembers", "+llen", "+select"]


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis the test may use but never restart: SLUICE_TEST_REDIS_URL, else private."""
    env = os.environ.get("SLUICE_TEST_REDIS_URL")
    if env:
        yield env
        return
    with private_redis() as server:
        yield server.url


@pytest.fixture
def api() -> Iterator[CaptureAPI]:
    capture = CaptureAPI()
    yield capture
    capture.close()


@pytest.fixture
def read_only_url(redis_url: str) -> Iterator[str]:
    """The same server, as a fresh ACL user allowed only to read and subscribe."""
    admin = redis.Redis.from_url(redis_url)
    user, password = f"sluice-agent-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    admin.execute_command("ACL", "SETUSER", user, "reset", "on", f">{password}", "~*",
                          "resetchannels", "&*", *READ_ONLY_ACL)
    parts = urlsplit(redis_url)
    host = parts.netloc.rsplit("@", 1)[-1]
    yield urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}"))
    admin.execute_command("ACL", "DELUSER", user)
    admin.close()


def _acl_denials(admin: redis.Redis, user: str) -> list[Any]:
    return [e for e in admin.execute_command("ACL", "LOG", "128")
            if (e.get(b"username") or e.get("username")) in (user, user.encode())]


def _kinds_by_job(api: CaptureAPI) -> dict[str, Counter[str]]:
    out: dict[str, Counter[str]] = {}
    for e in api.snapshot():
        if e.get("job_id"):
            out.setdefault(e["job_id"], Counter())[e["kind"]] += 1
    return out


def test_celery_scenario_arrives_with_agent_as_read_only_acl_user(
    redis_url: str, read_only_url: str, api: CaptureAPI,
) -> None:
    from tests import agent_celery_app as tasks

    prefix = f"t{uuid.uuid4().hex[:6]}_"
    host = f"{prefix}w1@agenttest"
    user = urlsplit(read_only_url).username or ""
    admin = redis.Redis.from_url(redis_url)
    had_deadlines = admin.exists("_kombu.binding_deadlines")  # kombu 5.7 pidbox bookkeeping
    admin.execute_command("ACL", "LOG", "RESET")
    limited = redis.Redis.from_url(read_only_url)
    with pytest.raises(redis.exceptions.NoPermissionError):
        limited.set(f"{prefix}probe", 1)  # the ACL really forbids writes
    admin.execute_command("ACL", "LOG", "RESET")
    patterns_before = admin.execute_command("PUBSUB", "NUMPAT")

    with agent_thread(read_only_url, api.endpoint, queue_interval=0.5), \
            celery_worker(redis_url, prefix, host) as worker:
        assert wait_until(lambda: admin.execute_command("PUBSUB", "NUMPAT")
                          >= patterns_before + 4, 15), "agent did not subscribe"
        assert wait_until(lambda: events_of(api, kind="worker.online", hostname=host), 30), \
            worker.log()
        tasks.configure(redis_url, prefix)
        sent = tasks.run_scenario()
        report = tasks.generate_report.delay(30)
        assert wait_until(lambda: events_of(api, kind="job.started", job_id=report.id), 20)
        tasks.app.control.revoke(report.id, terminate=True)

        expect: dict[str, set[str]] = {
            r.id: {"job.sent", "job.received", "job.started", "job.succeeded"}
            for label, r in sent.items() if label.startswith(("add", "send_email"))}
        expect[sent["charge_card"].id] = {"job.sent", "job.started", "job.failed"}
        expect[sent["sync_inventory"].id] = {"job.sent", "job.retried", "job.succeeded"}
        expect[sent["bad_message"].id] = {"job.sent", "job.rejected"}
        expect[report.id] = {"job.sent", "job.started", "job.revoked"}

        def complete() -> bool:
            got = _kinds_by_job(api)
            return all(kinds <= set(got.get(job, ())) for job, kinds in expect.items())

        assert wait_until(complete, 45), (
            {j: dict(_kinds_by_job(api).get(j, {})) for j in expect}, worker.log())
        assert _kinds_by_job(api)[sent["sync_inventory"].id]["job.retried"] == 2
        assert wait_until(lambda: events_of(api, kind="worker.heartbeat", hostname=host), 10)
        worker.proc.send_signal(signal.SIGTERM)  # warm shutdown: worker-offline
        assert wait_until(lambda: events_of(api, kind="worker.offline", hostname=host), 30)
        assert wait_until(lambda: {f"{prefix}default", f"{prefix}emails"} <= {
            e["queue"] for e in events_of(api, kind="queue.sampled")}, 15)

    events = api.snapshot()
    assert api.auth == {"Bearer sk_test_agent"}
    assert all(e["connection_id"] == "conn-agent-test" for e in events)
    ours = [e for e in events if e.get("job_id") in expect or e.get("hostname") == host]
    keys = [e["dedup_key"] for e in ours if e["kind"] != "queue.sampled"]
    assert len(keys) == len(set(keys)), "an event was delivered twice"
    email_sent = events_of(api, kind="job.sent", job_id=sent["send_email"].id)
    assert email_sent[0]["queue"] == f"{prefix}emails"
    failed = events_of(api, kind="job.failed", job_id=sent["charge_card"].id)[0]
    assert "ValueError" in failed["exception"]
    assert _acl_denials(admin, user) == [], "the agent tried a command outside its ACL"
    for key in admin.scan_iter(match=f"*{prefix}*"):
        admin.delete(key)
    if not had_deadlines:  # left by this test's revoke broadcast
        admin.delete("_kombu.binding_deadlines")


def _llen_total(client: redis.Redis, queue: str) -> int:
    """Depth as the test sees it: every list named after the queue (priorities too)."""
    total = 0
    for key in client.scan_iter(match=f"{queue}*"):
        name = key.decode()
        if (name == queue or name.startswith(queue + SEP)) and client.type(key) == b"list":
            total += int(client.llen(key))
    return total


def test_queue_depths_match_llen_and_new_queues_appear(redis_url: str, api: CaptureAPI
                                                      ) -> None:
    from tests import agent_celery_app as tasks

    prefix = f"q{uuid.uuid4().hex[:6]}_"
    admin = redis.Redis.from_url(redis_url)
    tasks.configure(redis_url, prefix)
    for i in range(7):
        tasks.add.delay(i, i)
    for i in range(3):
        tasks.add.apply_async((i, i), priority=5)
    for i in range(2):
        tasks.send_email.delay("a@example.com", str(i))
    default, emails, fresh = f"{prefix}default", f"{prefix}emails", f"{prefix}fresh"
    assert any(k.decode().startswith(default + SEP) for k in admin.scan_iter(f"{default}*"))

    def sampled(queue: str, depth: int) -> bool:
        return any(e["depth"] == depth for e in events_of(api, kind="queue.sampled",
                                                          queue=queue))

    try:
        with agent_thread(redis_url, api.endpoint, queue_interval=0.3):
            for queue in (default, emails):
                depth = _llen_total(admin, queue)
                assert depth == (10 if queue == default else 2)
                assert wait_until(partial(sampled, queue, depth), 15), queue
            tasks.add.apply_async((1, 2), queue=fresh)  # a queue born after the agent
            assert wait_until(lambda: sampled(fresh, 1), 15)
            tasks.add.delay(0, 0)
            assert wait_until(lambda: sampled(default, 11), 15)
    finally:
        for key in admin.scan_iter(match=f"*{prefix}*"):
            admin.delete(key)
    sample = events_of(api, kind="queue.sampled", queue=default)[-1]
    assert sample["hostname"] and sample["dedup_key"] and "consumers" not in sample
    assert not [q for e in events_of(api, kind="queue.sampled")
                if (q := e["queue"]).startswith("celeryev") or q.endswith(".pidbox")]


def _publish_fixture(client: redis.Redis, fixture: Path) -> int:
    count = 0
    for line in fixture.read_text().splitlines():
        message = json.loads(line)
        client.publish(message["channel"], message["data"])
        count += 1
    return count


def test_agent_survives_a_redis_restart(fixture_pubsub_path: Path,
                                        fixture_events_path: Path, api: CaptureAPI) -> None:
    expected = len(fixture_events_path.read_text().splitlines())
    server = RedisServer()
    server.start()
    try:
        with agent_thread(server.url, api.endpoint, queue_interval=0.3, workers=0):
            admin = server.client()
            assert wait_until(lambda: admin.execute_command("PUBSUB", "NUMPAT") == 4, 15)
            _publish_fixture(admin, fixture_pubsub_path)
            celery_kinds = ("job.", "worker.")
            assert wait_until(lambda: len([e for e in api.snapshot()
                                           if e["kind"].startswith(celery_kinds)]) == expected, 15)
            server.stop()
            time.sleep(1.0)  # the agent now retries with backoff
            server.start()
            restarted = time.monotonic()
            admin = server.client()
            assert wait_until(lambda: admin.execute_command("PUBSUB", "NUMPAT") == 4, 15)
            resubscribed = time.monotonic() - restarted
            assert resubscribed < 10, resubscribed
            admin.sadd("_kombu.binding.after", f"after{SEP}{SEP}after")
            admin.rpush("after", "m1", "m2")
            _publish_fixture(admin, fixture_pubsub_path)
            assert wait_until(lambda: len([e for e in api.snapshot()
                                           if e["kind"].startswith(celery_kinds)])
                              == 2 * expected, 15)
            assert wait_until(lambda: any(e["depth"] == 2 for e in events_of(
                api, kind="queue.sampled", queue="after")), 15)
    finally:
        server.close()
