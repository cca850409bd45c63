"""Tracking positions: how far a processor has folded each connection's log.

The contract (the eventsourcing library's tracking records): a processor writes its output
and its new position in ONE transaction, and a position only ever moves forward; a second
attempt to record the same or an earlier position fails, so output that was already
committed is never written twice. After a crash the processor resumes after its recorded
position: every event is processed exactly once.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from sluice.store.sqlfiles import queries

Q = queries(__package__, "tracking.sql")
TABLE = "tracking"
_TABLE = sql.Identifier(TABLE)


class AlreadyTracked(Exception):
    """The position recorded is not behind the one being recorded: another runner (or an
    earlier run) already processed these events; roll back this transaction's output."""


def _statement(name: str, table: sql.Composable) -> sql.Composed:
    return sql.SQL(Q[name]).format(table=table)


def position(conn: psycopg.Connection, connection_id: str, processor: str,
             table: sql.Composable = _TABLE) -> int:
    """The last position the processor recorded for the connection (0: none yet)."""
    row = conn.execute(_statement("position", table),
                       {"connection_id": connection_id, "processor": processor}).fetchone()
    return int(row[0]) if row else 0


def record(conn: psycopg.Connection, connection_id: str, processor: str, position: int,
           table: sql.Composable = _TABLE) -> None:
    """Record the new position, in the caller's transaction (with the output it covers).
    Raises AlreadyTracked unless it moves the position forward."""
    moved = conn.execute(_statement("record", table), {
        "connection_id": connection_id, "processor": processor, "position": position,
    }).fetchone()
    if moved is None:
        raise AlreadyTracked(f"{processor} is already at or past position {position}")
