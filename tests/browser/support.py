"""A `sluice serve` this test starts, stops and restarts on one port, and ways to feed it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import msgspec
import psycopg

from sluice.domain.events import Event
from sluice.store import connections, keys
from tests.integration.reads_support import ev, free_port, job


class Server:
    def __init__(self, url: str, log: Path) -> None:
        self.url = url
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sluice.cli", "serve", "--port", str(self.port)],
            env={**os.environ, "SLUICE_DATABASE_URL": self.url}, stdout=out,
            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                if httpx.get(self.base + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("sluice serve did not start: " + self.log.read_text()[-3000:])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class Tenant:
    """A connection with a key of every scope, feeding the server over the ingest API."""

    def __init__(self, url: str, base: str, name: str = "shop",
                 scopes: tuple[str, ...] = ("ingest", "read", "operate")) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            # a broker, so commands are accepted (202); nothing listens there: each one ends
            # failed with the reason, which the commands page shows
            self.connection_id = connections.create_connection(
                conn, name, broker_url="redis://127.0.0.1:1/0")
            # keep captured arguments: the retry test's job gets them through ingest
            connections.set_capture_args(conn, self.connection_id, True)
            self.key = keys.create_key(conn, self.connection_id, scopes=list(scopes)).api_key
        self.base = base

    def send(self, events: list[Event]) -> None:
        r = httpx.post(self.base + "/api/ingest", content=msgspec.json.encode({"events": events}),
                       headers={"Authorization": f"Bearer {self.key}",
                                "Content-Type": "application/json"}, timeout=30)
        assert r.status_code == 202, r.text
        assert not r.json()["rejected"], r.text

    def get(self, path: str) -> Any:
        r = httpx.get(self.base + path, headers={"Authorization": f"Bearer {self.key}"},
                      timeout=30)
        assert r.status_code == 200, r.text
        return r.json()


TRACEBACK = """Traceback (most recent call last):
  File "/app/venv/celery/app/trace.py", line 453, in trace_task
    R = retval = fun(*args, **kwargs)
  File "/app/shop/tasks.py", line 42, in charge_card
    raise PaymentDeclined(order_id)
shop.errors.PaymentDeclined: order 1042 declined"""


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def shop_jobs(now: float) -> list[Event]:
    """A mixed day of a shop: completed, failed (with a traceback), active, scheduled tasks
    on the queues default and emails, and a chain."""
    events: list[Event] = []
    for i in range(12):
        events += job(new_id("ok"), now - 600 + i * 20, name="shop.tasks.add",
                      queue="default", worker="shop1@host", runtime=0.2 + i / 100)
    for i in range(3):
        events += job(new_id("mail"), now - 500 + i * 30, name="shop.tasks.send_email",
                      queue="emails", worker="shop2@host", outcome="job.failed",
                      exception="SMTPError('refused')")
    for i in range(2):
        events += job(new_id("card"), now - 400 + i * 30, name="shop.tasks.charge_card",
                      queue="default", worker="shop1@host", outcome="job.failed",
                      exception="PaymentDeclined('order 1042 declined')")
    events += job(new_id("run"), now - 5, name="shop.tasks.sync_inventory", queue="default",
                  worker="shop1@host", outcome="job.started")
    for i in range(3):
        events.append(ev("job.sent", now - 60 + i, job_id=new_id("later"),
                         name="shop.tasks.generate_report", queue="reports",
                         hostname="producer@host", eta="2099-01-01T00:00:00+00:00"))
    return events


def failed_with_traceback(now: float, job_id: str) -> list[Event]:
    events = job(job_id, now - 30, name="shop.tasks.charge_card", queue="emails",
                 worker="shop2@host", outcome="job.failed",
                 exception="PaymentDeclined('order 1042 declined')")
    last = events[-1]
    events[-1] = msgspec.structs.replace(last, traceback=TRACEBACK)
    return events


def chain(now: float, root: str) -> list[Event]:
    second, third = new_id("chain2"), new_id("chain3")
    return (job(root, now - 90, name="shop.tasks.fetch", queue="default", root_id=root)
            + job(second, now - 80, name="shop.tasks.parse", queue="default", root_id=root,
                  parent_id=root)
            + job(third, now - 70, name="shop.tasks.store", queue="default", root_id=root,
                  parent_id=second))


def heartbeat(hostname: str, ts: float, kind: str = "worker.heartbeat",
              freq: float = 1.0) -> Event:
    return ev(kind, ts, hostname=hostname, freq=freq, active=0, processed=12,
              loadavg=[0.5, 0.4, 0.3], sw_ident="py-celery", sw_ver="5.7.0", sw_sys="Linux")
