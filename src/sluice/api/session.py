"""Browser sessions: `POST /api/session` signs in with a key (`read` scope) or a one-time
sign-in token, `GET /api/session` says who is signed in (and gives the CSRF token the page
sends back), `PUT /api/session` switches connection, `DELETE /api/session` signs out.

The cookie is HttpOnly (page scripts never see it), SameSite=Strict, Secure when the page was
served over HTTPS (directly or behind a proxy setting X-Forwarded-Proto), and expires with
the session. Only JSON bodies are taken, so a cross-site form cannot sign a browser in to
someone else's connection, and a sent Origin must be this server's.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

import msgspec
from litestar import Controller, Request, Response, delete, get, post, put
from litestar.datastructures import Cookie
from litestar.params import JSONBody

from sluice.store import keys, sessions

from .auth import (
    SAFE_METHODS,
    SESSION_COOKIE,
    Principal,
    authenticate,
    check_csrf,
    check_origin,
)
from .deps import Db
from .errors import ApiError

_JSON: Final = "application/json"


class SignIn(msgspec.Struct, forbid_unknown_fields=True):
    key: str | None = None  # an API key with the read scope
    token: str | None = None  # a one-time sign-in token (the demo's link)


class Switch(msgspec.Struct, forbid_unknown_fields=True):
    connection_id: str


class SessionInfo(msgspec.Struct):
    connection_id: str
    connection_name: str | None
    scopes: list[str]
    key_id: str
    csrf_token: str
    expires_at: dt.datetime
    connections: list[sessions.SessionConnection]


def _secure(request: Request[Any, Any, Any]) -> bool:
    proto = request.headers.get("x-forwarded-proto", request.url.scheme)
    return proto.split(",")[0].strip().lower() == "https"


def _cookie(request: Request[Any, Any, Any], value: str, max_age: int) -> Cookie:
    return Cookie(key=SESSION_COOKIE, value=value, path="/", httponly=True, samesite="strict",
                  secure=_secure(request), max_age=max_age)


def _require_json(request: Request[Any, Any, Any]) -> None:
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != _JSON:
        raise ApiError(415, "unsupported_media_type", "send the body as application/json",
                       field="Content-Type")


async def _info(db: Db, token: str) -> SessionInfo:
    record = await db.run(sessions.lookup, token)
    if record is None or record.revoked:
        raise ApiError(401, "session_ended", "not signed in (or the session ended)",
                       headers={"WWW-Authenticate": "Bearer"})
    held = await db.run(sessions.connections, token)
    active = next((c for c in held if c.active), None)
    return SessionInfo(record.connection_id, active.name if active else None,
                       list(record.scopes), record.key_id, record.csrf_token,
                       record.expires_at, held)


async def _key_id(db: Db, body: SignIn) -> str:
    """The id of the key the body signs in with, checked: known, standing, `read` scope."""
    if (body.key is None) == (body.token is None):
        raise ApiError(400, "bad_request", "give either key or token", field="key")
    if body.key is not None:
        record = await db.run(keys.lookup, body.key.strip())
        if record is None:
            raise ApiError(401, "unauthorized", "unknown API key", field="key")
        key_id, scopes, revoked = record.key_id, record.scopes, record.revoked
    else:
        redeemed = await db.run(sessions.redeem_login_token, (body.token or "").strip())
        if redeemed is None:
            raise ApiError(401, "unauthorized", "this sign-in link is unknown, used or "
                           "expired; sign in with an API key", field="token")
        found = await db.run(sessions.key_of, redeemed)
        if found is None:
            raise ApiError(401, "unauthorized", "the link's key no longer exists",
                           field="token")
        key_id, (_, scopes, revoked) = redeemed, found
    if revoked:
        raise ApiError(403, "key_revoked", "this API key has been revoked", field="key")
    if not keys.grants(scopes, "read"):
        raise ApiError(403, "forbidden", "the dashboard needs a key with the 'read' scope",
                       field="key")
    return key_id


class SessionController(Controller):
    path = "/api/session"
    tags = ["session"]

    @post("/", status_code=201, summary="Sign in: open a browser session with a read key")
    async def sign_in(self, request: Request[Any, Any, Any], db: Db, data: JSONBody[SignIn]
                      ) -> Response[SessionInfo]:
        _require_json(request)
        check_origin(request)
        key_id = await _key_id(db, data)
        current = request.cookies.get(SESSION_COOKIE)
        record = await db.run(sessions.lookup, current) if current else None
        if current and record is not None and not record.revoked:
            # signed in already: with the session's CSRF token this adds a connection to it
            # (the switcher); without, it is a fresh sign-in that replaces the cookie
            try:
                check_csrf(request, record.csrf_token)
            except ApiError:
                record = None
        if current and record is not None and await db.run(sessions.add_key, current, key_id):
            token = current
        else:
            token = (await db.run(sessions.create, key_id)).token
        info = await _info(db, token)
        max_age = max(0, int((info.expires_at - dt.datetime.now(dt.UTC)).total_seconds()))
        return Response(info, status_code=201, cookies=[_cookie(request, token, max_age)],
                        headers={"Cache-Control": "no-store"})

    @get("/", summary="The signed-in session: connection, scopes, CSRF token, connections")
    async def current(self, request: Request[Any, Any, Any], db: Db) -> Response[SessionInfo]:
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            raise ApiError(401, "unauthorized", "not signed in",
                           headers={"WWW-Authenticate": "Bearer"})
        return Response(await _info(db, token), headers={"Cache-Control": "no-store"})

    @put("/", summary="Switch the session to another of its connections")
    async def switch(self, request: Request[Any, Any, Any], db: Db, data: JSONBody[Switch]
                     ) -> Response[SessionInfo]:
        principal: Principal = await authenticate(request, "read")
        token = request.cookies.get(SESSION_COOKIE)
        if not principal.session or not token:
            raise ApiError(400, "bad_request", "only a browser session switches connection")
        if not await db.run(sessions.switch, token, data.connection_id):
            raise ApiError(404, "not_found", "this session holds no key of that connection",
                           field="connection_id")
        return Response(await _info(db, token), headers={"Cache-Control": "no-store"})

    @delete("/", status_code=204, summary="Sign out: end the session, clear its cookie")
    async def sign_out(self, request: Request[Any, Any, Any], db: Db) -> Response[None]:
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            record = await db.run(sessions.lookup, token)
            if record is not None and request.method not in SAFE_METHODS:
                check_csrf(request, record.csrf_token)
            await db.run(sessions.end, token)
        return Response(None, status_code=204, cookies=[_cookie(request, "", 0)])


ROUTE_HANDLERS: Final = [SessionController]
