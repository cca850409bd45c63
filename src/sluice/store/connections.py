"""Connections: one Celery deployment each, with its own keys, quota and retention."""

from __future__ import annotations

import datetime as dt
import uuid

import msgspec
import psycopg

from ..domain.accounts import DEFAULT_RETENTION_HOURS
from .sqlfiles import queries

Q = queries(__package__, "connections.sql")


class Connection(msgspec.Struct, frozen=True):
    id: str
    name: str
    created_at: dt.datetime
    daily_limit: int | None
    retention_hours: int
    accepted_today: int = 0
    active_keys: int = 0


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def create_connection(
    conn: psycopg.Connection,
    name: str,
    *,
    connection_id: str | None = None,
    daily_limit: int | None = None,
    retention_hours: int = DEFAULT_RETENTION_HOURS,
    broker_url: str | None = None,
    result_backend_url: str | None = None,
) -> str:
    """Create a connection (no quota, no broker by default) and return its id."""
    cid = connection_id or str(uuid.uuid4())
    conn.execute(
        Q["create_connection"],
        {"id": cid, "name": name, "daily_limit": daily_limit, "retention_hours": retention_hours,
         "broker_url": broker_url, "result_backend_url": result_backend_url},
    )
    return cid


def list_connections(conn: psycopg.Connection, today: dt.date | None = None) -> list[Connection]:
    today = today or dt.datetime.now(dt.UTC).date()
    rows = conn.execute(Q["list_connections"], {"today": today}).fetchall()
    return [Connection(*row) for row in rows]


def get_connection(conn: psycopg.Connection, connection_id: str) -> Connection | None:
    if not is_uuid(connection_id):
        return None
    row = conn.execute(Q["get_connection"], {"id": connection_id}).fetchone()
    return Connection(*row) if row else None


def set_limits(
    conn: psycopg.Connection,
    connection_id: str,
    *,
    daily_limit: int | msgspec.UnsetType | None = msgspec.UNSET,
    retention_hours: int | msgspec.UnsetType = msgspec.UNSET,
) -> bool:
    """Change a connection's quota (None = unlimited) and/or retention; False if unknown."""
    if get_connection(conn, connection_id) is None:
        return False
    with conn.transaction():
        if daily_limit is not msgspec.UNSET:
            conn.execute(Q["set_daily_limit"], {"id": connection_id, "daily_limit": daily_limit})
        if retention_hours is not msgspec.UNSET:
            conn.execute(
                Q["set_retention_hours"],
                {"id": connection_id, "retention_hours": retention_hours},
            )
    return True


class Broker(msgspec.Struct, frozen=True):
    """Where a connection's commands act. Secrets: show them with `domain.urls.redact_url`."""

    broker_url: str | None
    result_backend_url: str | None
    executor_seen_at: dt.datetime | None = None  # an agent executor's latest poll


def broker_of(conn: psycopg.Connection, connection_id: str) -> Broker | None:
    """The connection's broker settings; None when there is no such connection."""
    if not is_uuid(connection_id):
        return None
    row = conn.execute(Q["get_broker"], {"id": connection_id}).fetchone()
    return Broker(*row) if row else None


def set_broker(
    conn: psycopg.Connection,
    connection_id: str,
    *,
    broker_url: str | msgspec.UnsetType | None = msgspec.UNSET,
    result_backend_url: str | msgspec.UnsetType | None = msgspec.UNSET,
) -> bool:
    """Change the broker and/or result backend URL (None clears it); False if unknown."""
    if get_connection(conn, connection_id) is None:
        return False
    with conn.transaction():
        if broker_url is not msgspec.UNSET:
            conn.execute(Q["set_broker_url"], {"id": connection_id, "url": broker_url})
        if result_backend_url is not msgspec.UNSET:
            conn.execute(Q["set_result_backend_url"],
                         {"id": connection_id, "url": result_backend_url})
    return True


def executor_seen(conn: psycopg.Connection, connection_id: str) -> None:
    """Record that an agent executor of the connection asked for commands just now."""
    conn.execute(Q["executor_seen"], {"id": connection_id})
