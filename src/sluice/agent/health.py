"""The agent's own health: counters, a periodic log line, an optional Prometheus endpoint."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Final

log = logging.getLogger("sluice.agent")

_HELP: Final[dict[str, tuple[str, str]]] = {
    "events_in": ("counter", "Celery events read from the broker."),
    "sent": ("counter", "Events the transport delivered to the API."),
    "dropped": ("counter", "Events the transport dropped (buffer full or rejected)."),
    "undecodable": ("counter", "Broker messages or events that could not be decoded."),
    "queue_samples": ("counter", "queue.sampled events produced."),
    "reconnects": ("counter", "Broker reconnection attempts."),
    "lag_seconds": ("gauge", "Now minus the source timestamp of the last event read."),
    "lag_max_seconds": ("gauge", "Largest lag seen since the previous periodic log line."),
}


class Health:
    """Counters. Each is written by one thread (the reader or the sampler) except the rare
    ones behind the lock, so the hot path takes no lock."""

    def __init__(self, transport_stats: Callable[[], dict[str, int]] | None = None) -> None:
        self.events_in = 0
        self.undecodable = 0
        self.queue_samples = 0
        self.reconnects = 0
        self.lag_seconds = 0.0
        self.lag_max_seconds = 0.0
        self.undecodable_by_kind: dict[str, int] = {}
        self._transport_stats = transport_stats
        self._lock = threading.Lock()

    def observe(self, timestamp: float) -> None:
        lag = time.time() - timestamp
        self.lag_seconds = lag
        if lag > self.lag_max_seconds:
            self.lag_max_seconds = lag

    def count_undecodable(self, kind: str, detail: str = "") -> None:
        """Counted always; logged only the first time a kind is seen, so a flood of bad
        messages cannot flood the log."""
        with self._lock:
            self.undecodable += 1
            seen = self.undecodable_by_kind.get(kind, 0)
            self.undecodable_by_kind[kind] = seen + 1
        if not seen:
            log.warning("undecodable message (%s) %s; further ones of this kind are only "
                        "counted", kind, detail[:200])

    def count_reconnect(self) -> None:
        with self._lock:
            self.reconnects += 1

    def snapshot(self) -> dict[str, float]:
        stats: dict[str, int] = {}
        if self._transport_stats is not None:
            try:
                stats = self._transport_stats()
            except Exception:  # health reporting must never take the agent down
                log.exception("transport stats failed")
        snap: dict[str, float] = {
            "events_in": self.events_in,
            "sent": stats.get("sent", 0),
            "dropped": stats.get("dropped", 0),
            "undecodable": self.undecodable,
            "queue_samples": self.queue_samples,
            "reconnects": self.reconnects,
            "lag_seconds": round(self.lag_seconds, 3),
            "lag_max_seconds": round(self.lag_max_seconds, 3),
        }
        for key, value in stats.items():
            if key not in ("sent", "dropped"):
                snap[f"transport_{key}"] = value
        return snap

    def log_line(self) -> None:
        snap = self.snapshot()
        log.info("agent health %s", " ".join(f"{k}={v}" for k, v in snap.items()))
        self.lag_max_seconds = 0.0

    def prometheus_text(self) -> str:
        lines: list[str] = []
        for key, value in self.snapshot().items():
            mtype, text = _HELP.get(key, ("gauge", f"Transport statistic {key}."))
            name = f"sluice_agent_{key}" + ("_total" if mtype == "counter" else "")
            lines += [f"# HELP {name} {text}", f"# TYPE {name} {mtype}", f"{name} {value}"]
        return "\n".join(lines) + "\n"


def serve_metrics(health: Health, port: int, host: str = "0.0.0.0") -> ThreadingHTTPServer:
    """Serve `GET /metrics` (Prometheus text format) on a daemon thread; port 0 picks one."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] not in ("/metrics", "/"):
                self.send_error(404)
                return
            body = health.prometheus_text().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # scrapes are not news
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="sluice-agent-metrics",
                     daemon=True).start()
    return server
