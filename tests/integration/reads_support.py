"""Helpers for the read-API and stream tests: apps, connections with keys, synthetic jobs."""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import msgspec
import psycopg
from litestar import Litestar
from litestar.testing import TestClient

from sluice.api.app import create_app
from sluice.domain.celery import normalize
from sluice.domain.events import Event
from sluice.domain.validate import with_dedup_key
from sluice.store import connections, keys

_clock = itertools.count(1)


def app(url: str) -> Litestar:
    return create_app(database_url=url, maintenance_interval_s=None)


@contextmanager
def client(url: str) -> Iterator[TestClient[Litestar]]:
    with TestClient(app(url)) as c:
        yield c


def tenant(url: str, name: str, scopes: tuple[str, ...] = ("ingest", "read")
           ) -> tuple[str, dict[str, str]]:
    """A new connection and Authorization headers of a key for it."""
    with psycopg.connect(url, autocommit=True) as conn:
        cid = connections.create_connection(conn, name)
        key = keys.create_key(conn, cid, scopes=list(scopes))
    return cid, {"Authorization": f"Bearer {key.api_key}"}


def ev(kind: str, ts: float, **fields: Any) -> Event:
    fields.setdefault("clock", next(_clock))
    return with_dedup_key(Event(kind=kind, timestamp=ts, **fields))


def job(job_id: str, t0: float, *, name: str = "app.tasks.add", queue: str = "default",
        worker: str = "w1@host", outcome: str | None = "job.succeeded", runtime: float = 0.5,
        wait: float = 0.2, exception: str | None = None, **extra: Any) -> list[Event]:
    """Events of one job: sent (producer) [, received, started, outcome (worker)]."""
    out = [ev("job.sent", t0, job_id=job_id, name=name, queue=queue, hostname="producer@host",
              routing_key=queue, retries=0, **extra)]
    if outcome is None:
        return out
    out.append(ev("job.received", t0 + wait / 2, job_id=job_id, name=name, hostname=worker,
                  retries=0))
    out.append(ev("job.started", t0 + wait, job_id=job_id, hostname=worker))
    if outcome == "job.started":
        return out
    tail: dict[str, Any] = {"job_id": job_id, "hostname": worker}
    if outcome == "job.succeeded":
        tail.update(runtime=runtime, result="3")
    elif outcome in ("job.failed", "job.retried"):
        tail.update(exception=exception or "ValueError('boom')",
                    traceback="Traceback (most recent call last):\n  ...\nValueError: boom")
    out.append(ev(outcome, t0 + wait + runtime, **tail))
    return out


def ingest(c: TestClient[Litestar] | httpx.Client, headers: dict[str, str],
           events: list[Event]) -> dict[str, Any]:
    """POST /api/ingest in batches; returns the last answer (asserts 202)."""
    answer: dict[str, Any] = {}
    for i in range(0, len(events), 2000):
        body = msgspec.json.encode({"events": events[i:i + 2000]})
        r = c.post("/api/ingest", content=body,
                   headers={**headers, "Content-Type": "application/json"})
        assert r.status_code == 202, r.text
        answer = r.json()
        assert not answer["rejected"], answer
    return answer


def fixture_events(path: Path) -> list[Event]:
    out = []
    for line in path.open():
        e = normalize(json.loads(line))
        assert isinstance(e, Event)
        out.append(with_dedup_key(e))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(url: str) -> Iterator[str]:
    """`create_app` under uvicorn in a subprocess (like `sluice serve`); yields its base URL."""
    port = free_port()
    env = {**os.environ, "SLUICE_DATABASE_URL": url}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "sluice.api.app:create_app",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(base + "/schema/openapi.json", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the API server did not start")
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class SSE:
    """A minimal SSE reader over an httpx stream: (id, event, data) per message."""

    def __init__(self, response: httpx.Response) -> None:
        self._lines = response.iter_lines()
        self.comments: list[str] = []

    def next(self) -> tuple[int | None, str, str]:
        ident: int | None = None
        event, data = "message", []
        for line in self._lines:
            if not line:
                if data or event != "message":
                    return ident, event, "\n".join(data)
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "":
                self.comments.append(value)
            elif field == "id":
                ident = int(value)
            elif field == "event":
                event = value
            elif field == "data":
                data.append(value)
        raise EOFError("stream closed")
