"""A real `sluice serve` subprocess on a private embedded PostgreSQL that this test stops and
starts: every ingest status over real HTTP, 503 while the database is down and recovery with
nothing lost, graceful shutdown finishing an in-flight batch, JSON logs without keys."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from sluice.store import db as store_db
from sluice.store import keys
from tests.integration.api_support import auth, count_events, job_events, new_connection


class OwnPostgres:
    """An embedded PostgreSQL of this test alone (never the machine's shared server)."""

    def __init__(self, root: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.url = store_db.embedded_url(root / "pg")
        self.server = store_db._embedded[(root / "pg").resolve()]

    def stop(self) -> None:
        from pgserver._commands import pg_ctl

        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.server.pgdata,
               user=self.server.system_user, timeout=30)

    def start(self) -> None:
        self.server.ensure_postgres_running()


@pytest.fixture(scope="module")
def own_pg() -> Iterator[OwnPostgres]:
    root = Path(tempfile.mkdtemp(prefix="sluice-serve-"))  # not under pytest's rotating tmp
    root.chmod(0o755)
    pg = OwnPostgres(root)
    yield pg
    pg.server.cleanup()
    shutil.rmtree(root, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, url: str, log: Path) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._log_file = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sluice.cli", "serve", "--port", str(self.port)],
            env={**os.environ, "SLUICE_DATABASE_URL": url},
            stdout=self._log_file, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, log.read_text()
            try:
                if httpx.get(self.base + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise AssertionError("server did not start:\n" + log.read_text())

    def post(self, key: str, body: Any, **headers: str) -> httpx.Response:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return httpx.post(self.base + "/api/ingest", content=content,
                          headers=auth(key, **headers), timeout=30)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=40)
        self._log_file.close()
        return code


def test_serve_end_to_end(own_pg: OwnPostgres, tmp_path: Path) -> None:
    a, key_a, _ = new_connection(own_pg.url, "a")
    b, key_b, _ = new_connection(own_pg.url, "b", daily_limit=5)
    with psycopg.connect(own_pg.url, autocommit=True) as conn:
        reader = keys.create_key(conn, a, ["read"])
        revoked = keys.create_key(conn, a, ["ingest"])
        keys.revoke(conn, revoked.id)
    server = Server(own_pg.url, tmp_path / "serve.log")
    sent = 0
    try:
        first = job_events(300, prefix="first-")
        r = server.post(key_a, {"events": first})
        assert (r.status_code, r.json()) == (202, {"accepted": 300, "duplicates": 0,
                                                   "rejected": []})
        sent += 300
        assert server.post(key_a, {"events": first}).json()["duplicates"] == 300
        schema = httpx.get(server.base + "/schema/openapi.json", timeout=10)
        assert schema.status_code == 200 and "/api/ingest" in schema.json()["paths"]

        statuses = {
            400: server.post(key_a, b"{oops"),
            401: server.post("sk_live_unknown", {"events": []}),
            403: server.post(reader.api_key, {"events": []}),
            413: server.post(key_a, {"events": [first[0]] * 5001}),
            415: server.post(key_a, b"{}", **{"Content-Type": "text/csv"}),
            422: server.post(key_a, {"events": 3}),
        }
        assert server.post(revoked.api_key, {"events": []}).json()["error"] == "key_revoked"
        crossing = server.post(key_b, {"events": job_events(6)}).json()
        assert crossing["accepted"] == 5 and len(crossing["rejected"]) == 1
        statuses[429] = server.post(key_b, {"events": job_events(1)})
        for status, response in statuses.items():
            assert response.status_code == status, (status, response.text)
            assert response.json()["error"]
        assert int(statuses[429].headers["retry-after"]) > 0

        # PostgreSQL goes away: 503 + Retry-After, never a 500
        own_pg.stop()
        during = job_events(200, prefix="during-")
        r = server.post(key_a, {"events": during})
        assert r.status_code == 503, r.text
        assert r.json()["error"] == "database_unavailable" and int(r.headers["retry-after"]) > 0
        assert httpx.get(server.base + "/readyz", timeout=30).status_code == 503
        assert httpx.get(server.base + "/healthz", timeout=5).status_code == 200

        # ... and comes back: the sender's retry lands, exactly once
        own_pg.start()
        deadline = time.monotonic() + 60
        while True:
            r = server.post(key_a, {"events": during})
            if r.status_code == 202 or time.monotonic() > deadline:
                break
            assert r.status_code == 503, r.text
            time.sleep(0.5)
        assert r.status_code == 202 and r.json()["accepted"] == 200, r.text
        sent += 200
        assert httpx.get(server.base + "/readyz", timeout=10).status_code == 200

        # graceful shutdown: a batch still being uploaded when SIGTERM arrives is stored
        last = json.dumps({"events": job_events(500, prefix="last-")}).encode()
        release = threading.Event()
        answer: dict[str, httpx.Response] = {}

        def slow_body() -> Iterator[bytes]:
            yield last[:1000]
            release.wait(10)
            yield last[1000:]

        def upload() -> None:
            answer["r"] = httpx.post(server.base + "/api/ingest", content=slow_body(),
                                     headers=auth(key_a), timeout=30)

        uploader = threading.Thread(target=upload)
        uploader.start()
        time.sleep(0.5)
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        release.set()
        uploader.join(30)
        assert answer["r"].status_code == 202 and answer["r"].json()["accepted"] == 500
        sent += 500
        # uvicorn re-raises the SIGTERM once it has shut down cleanly
        assert server.proc.wait(timeout=40) in (0, -signal.SIGTERM)
    finally:
        if server.proc.poll() is None:
            server.stop()
    assert count_events(own_pg.url, a) == sent
    assert count_events(own_pg.url, b) == 5

    log = server.log.read_text()
    assert "sk_live_" not in log
    requests = [json.loads(line) for line in log.splitlines()
                if line.startswith("{") and '"msg":"request"' in line]
    ingests = [r for r in requests if r["path"] == "/api/ingest"]
    assert {r["status"] for r in ingests} >= {202, 400, 401, 403, 413, 415, 422, 429, 503}
    assert '"msg":"Application shutdown complete."' in log
    ok = next(r for r in ingests if r["status"] == 202)
    assert ok["connection_id"] == a and ok["accepted"] == 300 and ok["latency_ms"] > 0
