"""Helpers for the command tests: a Redis broker (SLUICE_TEST_REDIS_URL, else a private
redis-server), connections with a broker and keys, jobs put in a given state, polling."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg

from sluice.domain.events import Event
from sluice.store import connections, keys
from tests.integration.agent_support import TESTS, RedisServer, free_port
from tests.integration.reads_support import ev, job


@contextmanager
def redis_broker() -> Iterator[str]:
    """A Redis URL for a test: the configured one (tests use their own queue names on it),
    else a private redis-server of this test."""
    url = os.environ.get("SLUICE_TEST_REDIS_URL")
    if url:
        yield url
        return
    server = RedisServer()
    server.start()
    try:
        yield server.url
    finally:
        server.close()


def operator(url: str, name: str = "ops", *, broker_url: str | None = None,
             result_backend_url: str | None = None,
             scopes: tuple[str, ...] = ("ingest", "read", "operate")
             ) -> tuple[str, dict[str, str]]:
    """A connection (with this broker, keeping captured arguments: retries may use them)
    and the headers of a key with these scopes."""
    with psycopg.connect(url, autocommit=True) as conn:
        cid = connections.create_connection(conn, name, broker_url=broker_url,
                                            result_backend_url=result_backend_url)
        connections.set_capture_args(conn, cid, True)
        key = keys.create_key(conn, cid, scopes=list(scopes))
    return cid, {"Authorization": f"Bearer {key.api_key}"}


def key_headers(url: str, cid: str, *scopes: str) -> dict[str, str]:
    with psycopg.connect(url, autocommit=True) as conn:
        key = keys.create_key(conn, cid, scopes=list(scopes))
    return {"Authorization": f"Bearer {key.api_key}"}


def job_in_state(state: str, job_id: str | None = None, **extra: Any) -> tuple[str, list[Event]]:
    """(job id, events that leave a job in `state`)."""
    jid = job_id or f"{state}-{uuid.uuid4()}"
    t0 = time.time() - 30
    if state == "unknown":
        return jid, []
    if state == "queued":
        return jid, job(jid, t0, outcome=None, **extra)
    if state == "scheduled":
        return jid, job(jid, t0, outcome=None, eta="2999-01-01T00:00:00+00:00", **extra)
    if state == "active":
        return jid, job(jid, t0, outcome="job.started", **extra)
    if state == "completed":
        return jid, job(jid, t0, **extra)
    if state == "failed":
        return jid, job(jid, t0, outcome="job.failed", **extra)
    if state == "retrying":
        return jid, job(jid, t0, outcome="job.retried", **extra)
    if state == "cancelled":
        return jid, [*job(jid, t0, outcome=None, **extra),
                     ev("job.revoked", t0 + 1, job_id=jid, hostname="w1@host")]
    raise ValueError(state)


def wait_for(fetch: Callable[[], Any], ok: Callable[[Any], bool], timeout: float = 20.0,
             step: float = 0.1) -> Any:
    """Poll `fetch` until `ok` holds of its value; that value (AssertionError on timeout)."""
    deadline = time.monotonic() + timeout
    value = fetch()
    while not ok(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting; last value: {value!r}")
        time.sleep(step)
        value = fetch()
    return value


class Worker:
    def __init__(self, proc: subprocess.Popen[bytes], log_path: str, hostname: str) -> None:
        self.proc = proc
        self.log_path = log_path
        self.hostname = hostname

    def log(self) -> str:
        return Path(self.log_path).read_text(errors="replace")[-4000:]

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the pool's children too
            self.proc.wait(10)


@contextmanager
def command_worker(broker_url: str, prefix: str, hostname: str, *,
                   visibility_timeout: float = 3600, concurrency: int = 2) -> Iterator[Worker]:
    """A real `celery worker` (prefork) on tests/commands_celery_app.py, consuming the
    prefixed default queue; its log in a temp file."""
    env = {**os.environ, "SLUICE_TEST_BROKER_URL": broker_url,
           "SLUICE_TEST_QUEUE_PREFIX": prefix,
           "SLUICE_TEST_VISIBILITY_TIMEOUT": str(visibility_timeout)}
    fd, log_path = tempfile.mkstemp(prefix="sluice-cmd-worker-", suffix=".log")
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "commands_celery_app", "worker", "-E",
         "-Q", f"{prefix}default", "-n", hostname, "-c", str(concurrency), "-P", "prefork",
         "--without-gossip", "--without-mingle", "-l", "info"],
        env=env, cwd=str(TESTS), stdout=fd, stderr=subprocess.STDOUT, start_new_session=True)
    os.close(fd)
    worker = Worker(proc, log_path, hostname)
    try:
        yield worker
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                worker.kill()
        os.unlink(log_path)


class Server:
    """`create_app` under uvicorn in a subprocess (as `sluice serve` runs it), which a test
    may kill -9."""

    def __init__(self, url: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "sluice.api.app:create_app",
             "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"],
            env={**os.environ, "SLUICE_DATABASE_URL": url})
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(self.base + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the API server did not start")
            time.sleep(0.1)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
