"""Browser sessions: a random token in an HttpOnly cookie, stored only as its SHA-256 hash,
with the key it acts as (its connection and scopes), a CSRF token and an expiry.

A session can hold several keys (one per connection the viewer signed in to) and acts as one
of them at a time (the connection switcher). The lookup joins the key on every request, so a
revoked key ends its sessions at once. One-time login tokens open a session for their key
once (the demo's sign-in link).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from typing import Final

import msgspec
import psycopg

from .sqlfiles import queries

Q = queries(__package__, "sessions.sql")
SESSION_PREFIX: Final = "ss_"
LOGIN_TOKEN_PREFIX: Final = "lt_"
SESSION_TTL: Final = dt.timedelta(hours=12)
LOGIN_TOKEN_TTL: Final = dt.timedelta(hours=24)
_MAX_TOKEN_LEN: Final = 128


class SessionRecord(msgspec.Struct, frozen=True):
    """What a session cookie grants now: its active key, and whether that key still stands."""

    key_id: str
    connection_id: str
    scopes: tuple[str, ...]
    revoked: bool
    csrf_token: str
    expires_at: dt.datetime


class NewSession(msgspec.Struct, frozen=True):
    token: str  # the cookie's value: exists only in the response that sets it
    csrf_token: str
    expires_at: dt.datetime


class SessionConnection(msgspec.Struct, frozen=True):
    connection_id: str
    name: str
    key_id: str
    key_prefix: str
    scopes: list[str]
    active: bool


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def _plausible(token: str, prefix: str) -> bool:
    return token.startswith(prefix) and len(token) <= _MAX_TOKEN_LEN


def create(conn: psycopg.Connection, key_id: str, ttl: dt.timedelta = SESSION_TTL
           ) -> NewSession:
    token = SESSION_PREFIX + secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    params = {"id": _hash(token), "key_id": key_id, "csrf_token": csrf, "ttl": ttl}
    with conn.transaction():
        conn.execute(Q["purge_expired"])  # an index range of the expired: keeps the table small
        row = conn.execute(Q["insert_session"], params).fetchone()
        conn.execute(Q["insert_session_key"], params)
    assert row is not None
    return NewSession(token, csrf, row[0])


def add_key(conn: psycopg.Connection, token: str, key_id: str) -> bool:
    """Sign another key in to a live session and act as it; False if the session is gone."""
    params = {"id": _hash(token), "key_id": key_id}
    with conn.transaction():
        if conn.execute(Q["set_active_key"], params).fetchone() is None:
            return False
        conn.execute(Q["insert_session_key"], params)
    return True


def lookup(conn: psycopg.Connection, token: str) -> SessionRecord | None:
    """The live session of a cookie's token (its key may be revoked: check), else None."""
    if not _plausible(token, SESSION_PREFIX):
        return None
    row = conn.execute(Q["lookup_session"], {"id": _hash(token)}).fetchone()
    if row is None:
        return None
    key_id, connection_id, scopes, revoked, csrf, expires_at = row
    return SessionRecord(key_id, connection_id, tuple(scopes), bool(revoked), csrf, expires_at)


def connections(conn: psycopg.Connection, token: str) -> list[SessionConnection]:
    rows = conn.execute(Q["session_connections"], {"id": _hash(token)}).fetchall()
    return [SessionConnection(cid, name, key_id, prefix, list(scopes), bool(active))
            for cid, name, key_id, prefix, scopes, active in rows]


def switch(conn: psycopg.Connection, token: str, connection_id: str) -> bool:
    """Act as the session's key for that connection; False if it holds none that stands."""
    try:
        row = conn.execute(Q["switch_session"], {"id": _hash(token),
                                                 "connection_id": connection_id}).fetchone()
    except psycopg.errors.InvalidTextRepresentation:  # not a uuid
        return False
    return row is not None


def end(conn: psycopg.Connection, token: str) -> None:
    if _plausible(token, SESSION_PREFIX):
        conn.execute(Q["delete_session"], {"id": _hash(token)})


def end_for_key(conn: psycopg.Connection, key_id: str) -> None:
    """End every session acting as this key (it was revoked)."""
    conn.execute(Q["delete_key_sessions"], {"key_id": key_id})


def purge_expired(conn: psycopg.Connection) -> int:
    row = conn.execute(Q["purge_expired"]).fetchone()
    return int(row[0]) if row else 0


def create_login_token(conn: psycopg.Connection, key_id: str,
                       ttl: dt.timedelta = LOGIN_TOKEN_TTL) -> str:
    """A one-time token that opens a session for this key (shown once, stored hashed)."""
    token = LOGIN_TOKEN_PREFIX + secrets.token_urlsafe(24)
    conn.execute(Q["insert_login_token"], {"hash": _hash(token), "key_id": key_id, "ttl": ttl})
    return token


def key_of(conn: psycopg.Connection, key_id: str) -> tuple[str, tuple[str, ...], bool] | None:
    """(connection_id, scopes, revoked) of a key by id."""
    row = conn.execute(Q["key_by_id"], {"key_id": key_id}).fetchone()
    return None if row is None else (row[0], tuple(row[1]), bool(row[2]))


def redeem_login_token(conn: psycopg.Connection, token: str) -> str | None:
    """The token's key id, the first time only and before it expires; else None."""
    if not _plausible(token, LOGIN_TOKEN_PREFIX):
        return None
    row = conn.execute(Q["redeem_login_token"], {"hash": _hash(token)}).fetchone()
    return str(row[0]) if row else None
