"""Retention: remove each connection's traffic older than its retention.

Partitions of the log are shared by all connections, so a daily partition is dropped whole
only once it is older than the longest retention of any connection; the expired rows of
connections with a shorter retention (and everything in events_default) are deleted.
Read models expire by the time columns their registry entry names (`ReadModel.expiry`).
The system stream (commands, alerts, audit, ...) never expires here: `purge_system` is the
admin's explicit purge.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from typing import Final

import msgspec
import psycopg
from psycopg import sql

from sluice.store import partitions, usage
from sluice.store.sqlfiles import queries
from sluice.views import registry

Q = queries(__package__, "retention.sql")
log = logging.getLogger(__name__)
_PARTITION_RE: Final = re.compile(r"^events_p(\d{8})$")
USAGE_KEPT_DAYS: Final = 62  # quota counters are tiny; keep two months for the record
_PURGE_LOCK_ID: Final = 0x51_1CE_0002


class PurgeResult(msgspec.Struct):
    dropped_partitions: list[str]
    events: int = 0  # rows deleted from the log (beside the dropped partitions)
    rows: dict[str, int] = {}  # rows deleted per read-model table


def _partition_day(name: str) -> dt.date | None:
    match = _PARTITION_RE.match(name)
    if not match:
        return None
    try:
        return dt.datetime.strptime(match.group(1), "%Y%m%d").date()
    except ValueError:
        return None


def _drop_partitions(conn: psycopg.Connection, cutoff: dt.datetime) -> list[str]:
    """Drop the daily partitions whose whole day ends at or before `cutoff`."""
    dropped = []
    for (name,) in conn.execute(Q["event_partitions"]).fetchall():
        day = _partition_day(name)
        if day is None:
            continue
        end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC)
        if end > cutoff:
            continue
        try:
            with conn.transaction():
                conn.execute(Q["drop_timeout"])
                conn.execute(sql.SQL(Q["drop_partition"]).format(name=sql.Identifier(name)))
            dropped.append(name)
        except psycopg.errors.LockNotAvailable:
            log.warning("partition %s busy; dropping it at the next purge", name)
        except psycopg.errors.UndefinedTable:
            pass  # dropped by someone else meanwhile
    if dropped:
        partitions.forget_cache()  # a dropped day must not pass for an existing partition
    return dropped


def purge(conn: psycopg.Connection, now: dt.datetime | None = None) -> PurgeResult:
    """Remove every connection's expired data. `conn` must be in autocommit mode.
    One purge at a time across processes (every `serve` worker runs it): a purge that finds
    another one running returns at once with nothing done."""
    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    got = conn.execute(Q["try_lock"], {"id": _PURGE_LOCK_ID}).fetchone()
    if not got or not got[0]:
        return PurgeResult(dropped_partitions=[])
    try:
        return _purge(conn, now)
    finally:
        conn.execute(Q["unlock"], {"id": _PURGE_LOCK_ID})


def _purge(conn: psycopg.Connection, now: dt.datetime) -> PurgeResult:
    retentions = [(cid, int(h)) for cid, h in conn.execute(Q["retentions"]).fetchall()]
    result = PurgeResult(dropped_partitions=[], rows={
        e.table: 0 for m in registry.READ_MODELS for e in m.expiry})
    if not retentions:
        return result
    longest = max(h for _, h in retentions)
    result.dropped_partitions = _drop_partitions(conn, now - dt.timedelta(hours=longest))
    for cid, hours in retentions:
        cutoff = now - dt.timedelta(hours=hours)
        params = {"connection_id": cid, "cutoff": cutoff, "cutoff_day": cutoff.date()}
        # One transaction per connection: a failure leaves the others' purge intact.
        with conn.transaction():
            result.events += conn.execute(Q["delete_events"], params).rowcount
            for model in registry.READ_MODELS:
                for expiry in model.expiry:
                    result.rows[expiry.table] += conn.execute(
                        sql.SQL(Q["expire_rows"]).format(
                            table=sql.Identifier(expiry.table),
                            column=sql.Identifier(expiry.column)),
                        params).rowcount
    usage.forget_before(conn, now.date() - dt.timedelta(days=USAGE_KEPT_DAYS))
    log.info("purge: %s", msgspec.json.encode(result).decode())
    return result


def purge_system(conn: psycopg.Connection, before: dt.datetime,
                 connection_id: str | None = None) -> int:
    """The admin's explicit purge of the system stream: its events older than `before` (of
    one connection, or all); returns how many. Read models derived from them keep what they
    folded until rebuilt."""
    return conn.execute(Q["delete_system_events"],
                        {"before": before, "connection_id": connection_id}).rowcount
