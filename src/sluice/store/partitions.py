"""Daily partitions of the event log: created ahead, dropped for retention."""

from __future__ import annotations

import datetime as dt
import logging

import psycopg
from psycopg import sql

from .db import Database, database_of
from .sqlfiles import queries

log = logging.getLogger(__name__)
Q = queries(__package__, "admin.sql")
# Days kept as their own partitions around today; older days land in events_default.
PAST_DAYS = 8
FUTURE_DAYS = 1
_known: set[tuple[Database, dt.date]] = set()


def partition_name(day: dt.date) -> str:
    return f"events_p{day:%Y%m%d}"


def window(today: dt.date) -> list[dt.date]:
    return [today + dt.timedelta(days=d) for d in range(-PAST_DAYS, FUTURE_DAYS + 1)]


def ensure(conn: psycopg.Connection, days: set[dt.date], today: dt.date | None = None) -> None:
    """Create the partitions of `days` that fall in today's window and do not exist yet."""
    today = today or dt.datetime.now(dt.UTC).date()
    wanted = set(window(today))
    database = database_of(conn)
    for day in sorted(days & wanted):
        if (database, day) in _known:
            continue
        name = partition_name(day)
        try:
            with conn.transaction():
                exists = conn.execute(Q["relation_exists"], {"name": name}).fetchone()
                if exists and not exists[0]:
                    conn.execute(sql.SQL(Q["create_partition"]).format(
                        name=sql.Identifier(name), start=sql.Literal(day),
                        end=sql.Literal(day + dt.timedelta(days=1))))
        except psycopg.errors.CheckViolation:
            # rows of that day already sit in the default partition: leave them there
            log.warning("partition %s not created: day already in events_default", name)
        except psycopg.errors.DuplicateTable:
            pass
        _known.add((database, day))


def ensure_window(conn: psycopg.Connection, today: dt.date | None = None) -> None:
    today = today or dt.datetime.now(dt.UTC).date()
    ensure(conn, set(window(today)), today)


def forget_cache() -> None:
    _known.clear()
