"""Per-connection daily usage counters (accepted events per UTC day), for quotas."""

from __future__ import annotations

import datetime as dt

import psycopg

from .sqlfiles import queries

Q = queries(__package__, "usage.sql")


def limited(conn: psycopg.Connection, connection_id: str) -> bool:
    """Whether the connection has a daily limit."""
    row = conn.execute(Q["daily_limit"], {"connection_id": connection_id}).fetchone()
    return row is not None and row[0] is not None


def lock(conn: psycopg.Connection, connection_id: str, day: dt.date) -> tuple[int, int | None]:
    """(used, limit) of the day, its counter row locked to commit (the caller's transaction)."""
    row = conn.execute(Q["lock_usage"], {"connection_id": connection_id, "day": day}).fetchone()
    assert row is not None
    return int(row[0]), row[1]


def add(conn: psycopg.Connection, connection_id: str, day: dt.date, n: int) -> None:
    """Count n more events stored (in the append's transaction: the count stays exact)."""
    conn.execute(Q["add_usage"], {"connection_id": connection_id, "day": day, "n": n})


def used(conn: psycopg.Connection, connection_id: str, day: dt.date) -> int:
    row = conn.execute(Q["usage"], {"connection_id": connection_id, "day": day}).fetchone()
    return int(row[0]) if row else 0


def forget_before(conn: psycopg.Connection, day: dt.date) -> int:
    """Delete the counters of days before `day`; return how many."""
    return conn.execute(Q["delete_usage"], {"before": day}).rowcount
