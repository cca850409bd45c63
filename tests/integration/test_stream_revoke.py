"""An open event stream lives only as long as its key: revoking the key, or taking the
`read` scope from it, ends its open streams within a second (real server, real HTTP)."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import psycopg

from sluice.store import connections, keys
from tests.integration.reads_support import ingest, job, serve


class Watcher(threading.Thread):
    """Reads a stream in the background: its lines, and when it ended."""

    def __init__(self, base: str, key: str) -> None:
        super().__init__(daemon=True)
        self.base, self.key = base, key
        self.lines: list[str] = []
        self.connected = threading.Event()
        self.ended_at: float | None = None
        self.status = 0

    def run(self) -> None:
        with httpx.stream("GET", self.base + "/api/events/stream", timeout=30,
                          headers={"Authorization": f"Bearer {self.key}"}) as r:
            self.status = r.status_code
            try:
                for line in r.iter_lines():
                    self.lines.append(line)
                    if line.startswith(": connected"):
                        self.connected.set()
            except httpx.HTTPError:
                pass
        self.ended_at = time.monotonic()


def test_revoked_or_descoped_keys_end_their_open_streams(fresh_db_url: str) -> None:
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        cid = connections.create_connection(conn, "a")
        revoked, descoped, kept = (keys.create_key(conn, cid, ["ingest", "read"])
                                   for _ in range(3))
    with serve(fresh_db_url) as base:
        streams = {k.id: Watcher(base, k.api_key) for k in (revoked, descoped, kept)}
        for w in streams.values():
            w.start()
            assert w.connected.wait(15) and w.status == 200
        with psycopg.connect(fresh_db_url, autocommit=True) as conn:
            keys.revoke(conn, revoked.id)
            at_revoke = time.monotonic()
            conn.execute("UPDATE api_keys SET scopes = '{ingest}' WHERE id = %s",
                         (descoped.id,))
            at_descope = time.monotonic()
        for key_id, since in ((revoked.id, at_revoke), (descoped.id, at_descope)):
            w = streams[key_id]
            w.join(5)
            assert w.ended_at is not None, f"stream of {key_id} still open"
            assert w.ended_at - since < 1.0, w.ended_at - since
            assert "event: end" in w.lines
        # the other key's stream is untouched and still live
        alive = streams[kept.id]
        assert alive.is_alive()
        headers: dict[str, Any] = {"Authorization": f"Bearer {kept.api_key}"}
        with httpx.Client(base_url=base, timeout=15) as c:
            ingest(c, headers, job("after", time.time() - 1))
            deadline = time.monotonic() + 10
            while not any('"job_id":"after"' in line for line in alive.lines):
                assert time.monotonic() < deadline, alive.lines
                time.sleep(0.05)
            # reconnecting with the revoked key is refused
            r = c.get("/api/events/stream",
                      headers={"Authorization": f"Bearer {revoked.api_key}"})
            assert r.status_code == 403 and r.json()["error"] == "key_revoked"
            r = c.get("/api/events/stream", params={"kind": "job.\x00"}, headers=headers)
            assert r.status_code == 400 and r.json()["field"] == "kind"
