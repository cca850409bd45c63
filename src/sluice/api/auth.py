"""Authentication: `Authorization: Bearer sk_live_...` (API clients) or the browser's session
cookie (`sluice_session`, see session.py) -> the key's connection and scopes.

For other controllers (reads, SSE, commands), pick one:

1. As a dependency (preferred): the handler gets a `Principal`, or the request is answered
   401 (no/unknown key) or 403 (revoked key, missing scope) before the handler runs::

       from litestar.di import NamedDependency
       from sluice.api.auth import Principal, requires

       @get("/api/jobs", dependencies={"principal": requires("read")})
       async def list_jobs(principal: NamedDependency[Principal]) -> JobPage:
           ...  # principal.connection_id scopes every query

   `requires` works on controllers too: `class Jobs(Controller): dependencies = {...}`.

2. Imperatively: `principal = await authenticate(request, "operate")`.

Scopes are "ingest", "read", "operate", "admin"; "admin" implies all the others. Each request
looks its key up by hash (one index probe, no cache), so revocation takes effect at once.
A database outage during the lookup answers 503 with Retry-After (see errors.py).

A session is ambient (the browser sends its cookie by itself), so a state-changing request
authenticated by one must also carry the session's CSRF token in `X-CSRF-Token` (the
synchronizer-token pattern: the token lives in the session row, the page reads it from
`GET /api/session`), and an `Origin`, when sent, must be this server's. A bearer key is never
ambient and needs neither. The cookie is also SameSite=Strict.
"""

from __future__ import annotations

import hmac
from typing import Any, Final

import msgspec
from litestar import Request
from litestar.di import Provide

from sluice.domain.accounts import SCOPES
from sluice.store import keys, sessions

from .deps import request_db
from .errors import ApiError
from .logs import note

_CACHED: Final = "sluice_principal"
SESSION_COOKIE: Final = "sluice_session"
CSRF_HEADER: Final = "x-csrf-token"
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})


class Principal(msgspec.Struct, frozen=True):
    """Who is calling: the key's connection (every query is scoped to it), its scopes and id."""

    connection_id: str
    scopes: tuple[str, ...]
    key_id: str
    session: bool = False  # authenticated by a browser session (not a bearer key)

    def can(self, scope: str) -> bool:
        return keys.grants(self.scopes, scope)


def _bearer(header: str) -> str:
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("Authorization must be 'Bearer <API key>'")
    return token.strip()


def _unauthorized(detail: str, code: str = "unauthorized") -> ApiError:
    return ApiError(401, code, detail, headers={"WWW-Authenticate": "Bearer"})


def own_origin(request: Request[Any, Any, Any]) -> str:
    """This server's origin as the browser sees it (behind a proxy: X-Forwarded-*)."""
    proto = request.headers.get("x-forwarded-proto", request.url.scheme).split(",")[0].strip()
    host = request.headers.get("x-forwarded-host", request.headers.get("host", ""))
    return f"{proto}://{host.split(',')[0].strip()}"


def check_origin(request: Request[Any, Any, Any]) -> None:
    """A browser's state-changing request must come from this server's own pages."""
    origin = request.headers.get("origin")
    if origin is not None and origin != own_origin(request):
        raise ApiError(403, "csrf", f"cross-origin request from {origin!r} refused",
                       field="Origin")


def check_csrf(request: Request[Any, Any, Any], expected: str) -> None:
    check_origin(request)
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise ApiError(403, "csrf", "missing or wrong X-CSRF-Token (GET /api/session "
                       "gives the session's token)", field="X-CSRF-Token")


async def _from_key(request: Request[Any, Any, Any], header: str) -> Principal:
    token = _bearer(header)
    record = await request_db(request).run(keys.lookup, token)
    if record is None:
        raise _unauthorized("unknown API key")
    note(request, connection_id=record.connection_id, key_id=record.key_id)
    if record.revoked:
        raise ApiError(403, "key_revoked", "this API key has been revoked")
    return Principal(record.connection_id, record.scopes, record.key_id)


async def _from_session(request: Request[Any, Any, Any], token: str) -> Principal:
    db = request_db(request)
    record = await db.run(sessions.lookup, token)
    if record is None:
        raise _unauthorized("the session has expired or ended; sign in again at /login",
                            "session_ended")
    note(request, connection_id=record.connection_id, key_id=record.key_id)
    if record.revoked:
        await db.run(sessions.end_for_key, record.key_id)
        raise _unauthorized("the session ended: its API key has been revoked",
                            "session_ended")
    if request.method not in SAFE_METHODS:
        check_csrf(request, record.csrf_token)
    return Principal(record.connection_id, record.scopes, record.key_id, session=True)


async def authenticate(request: Request[Any, Any, Any], scope: str) -> Principal:
    """The caller's Principal if its key (or session) is valid, live and grants `scope`;
    else ApiError 401/403. Looked up once per request (the result is kept on the request)."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")
    principal = request.scope.get(_CACHED)
    if not isinstance(principal, Principal):
        header = request.headers.get("authorization")
        cookie = request.cookies.get(SESSION_COOKIE)
        if header:
            principal = await _from_key(request, header)
        elif cookie:
            principal = await _from_session(request, cookie)
        else:
            raise _unauthorized("missing Authorization: Bearer <API key> (or a browser "
                                "session: sign in at /login)")
        request.scope[_CACHED] = principal  # type: ignore[typeddict-unknown-key]
    if not principal.can(scope):
        raise ApiError(403, "forbidden", f"this API key lacks the {scope!r} scope")
    return principal


def requires(scope: str) -> Provide:
    """A Litestar dependency giving the authenticated Principal with `scope` (see module doc)."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    async def principal(request: Request[Any, Any, Any]) -> Principal:
        return await authenticate(request, scope)

    return Provide(principal)
