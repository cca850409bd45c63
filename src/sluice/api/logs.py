"""Structured logs: one JSON line per request (connection, counts, status, latency).

Handlers add facts with `note(request, **facts)`; the access-log middleware writes them when
the response is sent. Only chosen facts are logged: never headers, so never an API key.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
import time
from typing import Any, Final

import msgspec
from litestar import Request
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

access_log = logging.getLogger("sluice.access")
_FACTS: Final = "sluice_log"
_ENC: Final = msgspec.json.Encoder()


def note(request: Request[Any, Any, Any], **facts: Any) -> bool:
    """Attach facts (connection_id, accepted, ...) to this request's access-log line; False
    when the request bypassed the middleware (no route matched: 404/405)."""
    bag = request.scope.get(_FACTS)
    if isinstance(bag, dict):
        bag.update(facts)
        return True
    return False


def log_unrouted(request: Request[Any, Any, Any], status: int, error: str) -> None:
    """The access-log line of a request no route matched (the middleware never saw it)."""
    access_log.info("request", extra={"json": {
        "method": request.scope.get("method"), "path": request.scope.get("path"),
        "status": status, "error": error}})


def access_log_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        facts: dict[str, Any] = {}
        scope[_FACTS] = facts  # type: ignore[typeddict-unknown-key]
        start = time.perf_counter()
        status = 0

        async def send_and_watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, send_and_watch)
        finally:
            line = {
                "method": scope.get("method"),
                "path": scope.get("path"),
                "status": status or facts.get("status") or 500,
                "latency_ms": round((time.perf_counter() - start) * 1000, 2),
                **{k: v for k, v in facts.items() if k != "status"},
            }
            access_log.info("request", extra={"json": line})

    return middleware


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, plus `extra={"json": {...}}`."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        extra = getattr(record, "json", None)
        if isinstance(extra, dict):
            out.update(extra)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return _ENC.encode(out).decode()


def configure_logging(level: int = logging.INFO) -> None:
    """JSON lines on stderr for sluice's loggers (and uvicorn's errors)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("uvicorn.access").disabled = True  # ours replaces it
