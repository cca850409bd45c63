"""Authentication: `Authorization: Bearer sk_live_...` -> the key's connection and scopes.

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
"""

from __future__ import annotations

from typing import Any, Final

import msgspec
from litestar import Request
from litestar.di import Provide

from sluice.domain.accounts import SCOPES
from sluice.store import keys

from .deps import request_db
from .errors import ApiError
from .logs import note

_CACHED: Final = "sluice_principal"


class Principal(msgspec.Struct, frozen=True):
    """Who is calling: the key's connection (every query is scoped to it), its scopes and id."""

    connection_id: str
    scopes: tuple[str, ...]
    key_id: str

    def can(self, scope: str) -> bool:
        return keys.grants(self.scopes, scope)


def _bearer(request: Request[Any, Any, Any]) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise _unauthorized("missing Authorization: Bearer <API key>")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("Authorization must be 'Bearer <API key>'")
    return token.strip()


def _unauthorized(detail: str) -> ApiError:
    return ApiError(401, "unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})


async def authenticate(request: Request[Any, Any, Any], scope: str) -> Principal:
    """The caller's Principal if its key is valid, live and grants `scope`; else ApiError
    401/403. The lookup is done once per request (the result is kept on the request)."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")
    principal = request.scope.get(_CACHED)
    if not isinstance(principal, Principal):
        token = _bearer(request)
        record = await request_db(request).run(keys.lookup, token)
        if record is None:
            raise _unauthorized("unknown API key")
        note(request, connection_id=record.connection_id, key_id=record.key_id)
        if record.revoked:
            raise ApiError(403, "key_revoked", "this API key has been revoked")
        principal = Principal(record.connection_id, record.scopes, record.key_id)
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
