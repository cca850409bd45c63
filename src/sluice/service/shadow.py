"""A rebuild's shadow schema: its name, its tables' names, the tracking of how far the
rebuild has folded the log, and the session settings of a connection that writes into it."""

from __future__ import annotations

from typing import Final

import psycopg
from psycopg import sql

from sluice.store.sqlfiles import queries

Q = queries(__package__, "shadow.sql")
SCHEMA: Final = "sluice_rebuild"
PROCESSOR: Final = "rebuild"  # its name in the shadow's tracking table


def table(name: str) -> sql.Identifier:
    """A table of the shadow schema."""
    return sql.Identifier(SCHEMA, name)


TRACKING: Final = table("tracking")


def statement(text: str, **slots: sql.Composable) -> sql.Composed:
    """A statement (of a .sql file) with its {schema} slot, and the others given, filled."""
    return sql.SQL(text).format(schema=sql.Identifier(SCHEMA), **slots)


def conninfo_of(conn: psycopg.Connection) -> str:
    """What another connection to the same database as `conn` takes (a rebuild's helpers)."""
    return psycopg.conninfo.make_conninfo(
        conn.info.dsn, **({"password": conn.info.password} if conn.info.password else {}))


def enter(conn: psycopg.Connection) -> None:
    """Set the session to write into the shadow (its tables first on the search path)."""
    conn.execute(statement(Q["shadow_first"]))
    conn.execute(Q["custom_plans"])


def leave(conn: psycopg.Connection) -> None:
    conn.execute(Q["reset_search_path"])
    conn.execute(Q["reset_plans"])
