"""A NUL character can be in no name, id, cursor or file of Sluice's (PostgreSQL text
cannot hold one, nor can a file path): a request whose path or query string decodes to one is
answered 400, naming the parameter, before any handler sees it."""

from __future__ import annotations

from typing import Final
from urllib.parse import parse_qsl

import msgspec
from litestar.enums import ScopeType
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Receive,
    Scope,
    Send,
)

from .errors import ErrorBody

_NUL: Final = "\x00"
_ENCODER: Final = msgspec.json.Encoder()


def nul_field(scope: Scope) -> str | None:
    """The first place of the request holding a NUL: `path`, or a query parameter's name."""
    if _NUL in scope.get("path", ""):
        return "path"
    query = scope.get("query_string", b"")
    if b"%00" in query or b"\x00" in query:
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if _NUL in name or _NUL in value:
                return name.replace(_NUL, "") or "query"
        return "query"
    return None


def nul_guard_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        field = nul_field(scope) if scope["type"] == ScopeType.HTTP else None
        if field is None:
            await app(scope, receive, send)
            return
        body = _ENCODER.encode(ErrorBody("bad_request",
                                         f"{field} must not contain NUL characters", field))
        start: HTTPResponseStartEvent = {
            "type": "http.response.start", "status": 400,
            "headers": [(b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode())]}
        await send(start)
        end: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body,
                                      "more_body": False}
        await send(end)

    return middleware
