"""Connections: one Celery deployment each, with its own keys, quota and retention."""

from __future__ import annotations

import datetime as dt
import uuid

import msgspec
import psycopg
from psycopg.rows import kwargs_row

from ..domain.accounts import DEFAULT_RETENTION_HOURS
from .sqlfiles import queries

Q = queries(__package__, "connections.sql")


class Connection(msgspec.Struct, frozen=True):
    id: str
    name: str
    created_at: dt.datetime
    daily_limit: int | None
    retention_hours: int
    # keep task arguments and results (ingest drops them otherwise)
    capture_args: bool = False
    accepted_today: int = 0
    active_keys: int = 0


class IngestSettings(msgspec.Struct, frozen=True):
    """What ingest needs of a batch's connection."""

    limited: bool  # has a daily quota
    capture_args: bool


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


class NameTaken(Exception):
    """A connection of that name exists already (names are unique)."""

    def __init__(self, name: str, existing_id: str | None) -> None:
        super().__init__(f"a connection named {name!r} exists already")
        self.name = name
        self.existing_id = existing_id


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
    """Create a connection (no quota, no broker by default) and return its id; NameTaken if the name
    is in use."""
    cid = connection_id or str(uuid.uuid4())
    try:
        with conn.transaction():  # a savepoint inside a caller's transaction
            conn.execute(
                Q["create_connection"],
                {"id": cid, "name": name, "daily_limit": daily_limit,
                 "retention_hours": retention_hours, "broker_url": broker_url,
                 "result_backend_url": result_backend_url},
            )
    except psycopg.errors.UniqueViolation as exc:
        if exc.diag.constraint_name != "connections_name_key":
            raise
        raise NameTaken(name, find_by_name(conn, name)) from None
    return cid


def find_by_name(conn: psycopg.Connection, name: str) -> str | None:
    """The id of the connection with this name, if any."""
    row = conn.execute(Q["find_by_name"], {"name": name}).fetchone()
    return str(row[0]) if row else None


def list_connections(conn: psycopg.Connection, today: dt.date | None = None) -> list[Connection]:
    today = today or dt.datetime.now(dt.UTC).date()
    with conn.cursor(row_factory=kwargs_row(Connection)) as cur:
        return cur.execute(Q["list_connections"], {"today": today}).fetchall()


def get_connection(conn: psycopg.Connection, connection_id: str) -> Connection | None:
    if not is_uuid(connection_id):
        return None
    with conn.cursor(row_factory=kwargs_row(Connection)) as cur:
        return cur.execute(Q["get_connection"], {"id": connection_id}).fetchone()


def ingest_settings(conn: psycopg.Connection, connection_id: str) -> IngestSettings:
    """The connection's quota and capture settings (an unknown connection: neither)."""
    row = conn.execute(Q["ingest_settings"], {"id": connection_id}).fetchone()
    return IngestSettings(bool(row[0]), bool(row[1])) if row else IngestSettings(False, False)


def set_capture_args(conn: psycopg.Connection, connection_id: str, capture: bool) -> bool:
    """Keep (True) or drop task arguments and results from now on; False if unknown."""
    if not is_uuid(connection_id):
        return False
    return conn.execute(Q["set_capture_args"],
                        {"id": connection_id, "capture_args": capture}).rowcount == 1


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
