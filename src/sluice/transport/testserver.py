"""A capturing stand-in for `POST /api/ingest`, for tests and benchmarks (not production).

It records every request and answers as scripted: a status, optional Retry-After, an
optional delay (to provoke client timeouts); by default 202 with the ingest answer shape.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import msgspec


@dataclass
class Reply:
    status: int = 202
    retry_after: str | None = None
    delay: float = 0.0
    body: bytes | None = None  # None: the 202 ingest answer (all accepted)


@dataclass
class Received:
    at: float
    headers: dict[str, str]
    raw: bytes
    body: Any
    status: int


@dataclass
class CaptureServer:
    """Start with `start()`; `url` is the endpoint to give the transport."""

    script: list[Reply] = field(default_factory=list)  # consumed first, one per request
    default: Reply = field(default_factory=Reply)
    responder: Callable[[Received], Reply] | None = None
    requests: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._seen_keys: set[str] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self, port: int = 0) -> CaptureServer:
        handler = _make_handler(self)
        self._server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def events(self) -> list[dict[str, Any]]:
        """Every event of every 2xx-answered request, in arrival order, deduplicated."""
        with self._lock:
            out: list[dict[str, Any]] = []
            seen: set[str] = set()
            for req in self.requests:
                if 200 <= req.status < 300 and isinstance(req.body, dict):
                    for ev in req.body.get("events", []):
                        key = ev.get("dedup_key", "")
                        if key and key in seen:
                            continue
                        seen.add(key)
                        out.append(ev)
            return out

    def _answer(self, received: Received) -> Reply:
        with self._lock:
            if self.script:
                reply = self.script.pop(0)
            elif self.responder is not None:
                reply = self.responder(received)
            else:
                reply = self.default
            received.status = reply.status
            self.requests.append(received)
            return reply


def _make_handler(server: CaptureServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            try:
                data = raw
                if self.headers.get("Content-Encoding") == "gzip":
                    data = gzip.decompress(raw)
                body: Any = msgspec.json.decode(data)
            except Exception:
                body = None
            received = Received(time.monotonic(), dict(self.headers.items()), raw, body, 0)
            reply = server._answer(received)
            if reply.delay:
                time.sleep(reply.delay)
            payload = reply.body
            if payload is None:
                n = len(body.get("events", [])) if isinstance(body, dict) else 0
                payload = msgspec.json.encode({"accepted": n, "duplicates": 0, "rejected": []})
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                if reply.retry_after is not None:
                    self.send_header("Retry-After", reply.retry_after)
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                pass  # the client gave up (timeout test)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
