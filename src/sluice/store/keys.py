"""API keys: `sk_live_` + 32 random bytes, shown once, stored only as a SHA-256 hash.

A key belongs to one connection and carries scopes. `admin` implies every other scope.
Revocation is immediate: every request looks its key up (one unique-index probe), no cache.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Iterable
from typing import Final

import msgspec
import psycopg

from ..domain.accounts import ADMIN, SCOPES
from .sqlfiles import queries

Q = queries(__package__, "keys.sql")
KEY_PREFIX: Final = "sk_live_"
_SHOWN_PREFIX_LEN: Final = len(KEY_PREFIX) + 6
# token_urlsafe(32) is 43 chars; anything much longer is not a key of ours (skip the DB).
MAX_KEY_LEN: Final = 128


class KeyRecord(msgspec.Struct, frozen=True):
    """What a key grants (looked up by hash on each request)."""

    key_id: str
    connection_id: str
    scopes: tuple[str, ...]
    revoked: bool


class KeyInfo(msgspec.Struct, frozen=True):
    """A key as listed: never the key itself."""

    id: str
    connection_id: str
    prefix: str
    scopes: list[str]
    name: str | None
    created_at: dt.datetime
    revoked_at: dt.datetime | None


class NewKey(msgspec.Struct, frozen=True):
    id: str
    api_key: str  # the only time the whole key exists outside the caller's hands
    scopes: list[str]


def hash_key(api_key: str) -> bytes:
    return hashlib.sha256(api_key.encode("utf-8", "surrogatepass")).digest()


def grants(scopes: Iterable[str], scope: str) -> bool:
    held = set(scopes)
    return scope in held or ADMIN in held


def normalize_scopes(scopes: Iterable[str] | None) -> list[str]:
    """Known scopes, deduplicated, in canonical order; all of them when none are given."""
    wanted = list(scopes) if scopes is not None else list(SCOPES)
    unknown = sorted(set(wanted) - set(SCOPES))
    if unknown:
        raise ValueError(f"unknown scope(s) {', '.join(unknown)}; known: {', '.join(SCOPES)}")
    if not wanted:
        raise ValueError("a key needs at least one scope")
    return [s for s in SCOPES if s in wanted]


def create_key(
    conn: psycopg.Connection,
    connection_id: str,
    scopes: Iterable[str] | None = None,
    name: str | None = None,
) -> NewKey:
    """Mint a key for a connection; the returned `api_key` is not stored anywhere."""
    chosen = normalize_scopes(scopes)
    api_key = KEY_PREFIX + secrets.token_urlsafe(32)
    key_id = "key_" + secrets.token_hex(8)
    conn.execute(
        Q["insert_key"],
        {
            "id": key_id,
            "connection_id": connection_id,
            "hash": hash_key(api_key),
            "prefix": api_key[:_SHOWN_PREFIX_LEN],
            "scopes": chosen,
            "name": name,
        },
    )
    return NewKey(id=key_id, api_key=api_key, scopes=chosen)


def lookup(conn: psycopg.Connection, api_key: str) -> KeyRecord | None:
    """The record of a presented key (revoked ones included), or None if unknown."""
    if not api_key.startswith(KEY_PREFIX) or len(api_key) > MAX_KEY_LEN:
        return None
    row = conn.execute(Q["lookup_key"], {"hash": hash_key(api_key)}).fetchone()
    if row is None:
        return None
    key_id, connection_id, scopes, revoked = row
    return KeyRecord(key_id, connection_id, tuple(scopes), bool(revoked))


def list_keys(conn: psycopg.Connection, connection_id: str) -> list[KeyInfo]:
    rows = conn.execute(Q["list_keys"], {"connection_id": connection_id}).fetchall()
    return [KeyInfo(*row) for row in rows]


def keys_granting(conn: psycopg.Connection, key_ids: Iterable[str], scope: str) -> set[str]:
    """Which of these keys are live (not revoked, not deleted) and grant `scope`."""
    rows = conn.execute(Q["keys_granting"], {"ids": list(key_ids), "scope": scope})
    return {key_id for (key_id,) in rows}


def revoke(conn: psycopg.Connection, key_id: str) -> bool:
    """Revoke at once (idempotent); False when no such key."""
    return conn.execute(Q["revoke_key"], {"id": key_id}).fetchone() is not None
