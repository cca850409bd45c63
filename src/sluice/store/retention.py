"""Retention: remove each connection's data older than its retention.

Partitions of the log are shared by all connections, so a daily partition is dropped whole
only once it is older than the longest retention of any connection; the expired rows of
connections with a shorter retention (and everything in events_default) are deleted.
Read models expire by their own time columns: jobs (with their transitions) by their latest
event, rollups by minute, queue samples and queues by sample time, workers by latest event.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from typing import Final

import msgspec
import psycopg
from psycopg import sql

from . import partitions
from .sqlfiles import queries

Q = queries(__file__, "retention.sql")
log = logging.getLogger(__name__)
_PARTITION_RE: Final = re.compile(r"^events_p(\d{8})$")
USAGE_KEPT_DAYS: Final = 62  # quota counters are tiny; keep two months for the record
# Dropping a partition needs an exclusive lock on `events`: never queue behind a long append.
_LOCK_TIMEOUT: Final = "5s"
_PURGE_LOCK_ID: Final = 0x51_1CE_0002


class PurgeResult(msgspec.Struct):
    dropped_partitions: list[str]
    events: int = 0
    jobs: int = 0
    job_transitions: int = 0
    rollups: int = 0
    queue_samples: int = 0
    queues: int = 0
    workers: int = 0


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
                conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(
                    sql.Literal(_LOCK_TIMEOUT)))
                conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))
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
    result = PurgeResult(dropped_partitions=[])
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
            jobs, transitions = conn.execute(Q["delete_jobs"], params).fetchone() or (0, 0)
            result.jobs += jobs
            result.job_transitions += transitions
            result.rollups += conn.execute(Q["delete_rollups"], params).rowcount
            result.queue_samples += conn.execute(Q["delete_queue_samples"], params).rowcount
            result.queues += conn.execute(Q["delete_queues"], params).rowcount
            result.workers += conn.execute(Q["delete_workers"], params).rowcount
    conn.execute(Q["delete_usage"], {"before": now.date() - dt.timedelta(days=USAGE_KEPT_DAYS)})
    log.info("purge: %s", msgspec.json.encode(result).decode())
    return result
