"""The append-only event log: insert rows at consecutive positions (dedup key unique per
connection, NOTIFY at commit), and read a connection's log by position.

Two streams share the positions: traffic (`events`, partitioned by day, expiring with each
connection's retention) and the system's own events (`system_events`, kept until an admin
purges them); `domain.events.stream_of` says which an event belongs to.

This module stores and reads; what else an append does in its transaction (quota,
projection, usage) is `sluice.service.ingest`'s, the one conductor of an append.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence

import msgspec
import psycopg

from sluice.domain.events import EVENT_DECODER, EVENT_ENCODER, Event, Stream, stream_of
from sluice.store import partitions
from sluice.store.binary_copy import as_date, day_of, micros, utc_date
from sluice.store.sqlfiles import queries

from . import notify

Q = queries(__package__, "event_log.sql")


class StoredEvent(msgspec.Struct, frozen=True):
    position: int
    connection_id: str
    event: Event
    batch: int = 0  # the append that stored it
    ingested_at: dt.datetime | None = None  # when that append reached Sluice


class Row(msgspec.Struct, gc=False):
    """One distinct event of an append, ready to copy."""

    event: Event
    ts: int  # binary_copy.micros of the source time
    day: int  # binary_copy.day_of that
    payload: str
    system: bool  # in the system stream


def payload_of(event: Event) -> str:
    """The payload column: the event without what its own columns hold (connection, dedup
    key, job id, hostname, queue), ~40% smaller; `event_of` puts them back."""
    return EVENT_ENCODER.encode(msgspec.structs.replace(
        event, connection_id=None, dedup_key="", job_id=None, hostname=None, queue=None)
    ).decode()


def event_of(payload: str, connection_id: str, dedup_key: str, job_id: str | None,
             hostname: str | None, queue: str | None) -> Event:
    """A stored event, whole again (rows stored before payloads were trimmed hold the same
    values in both places)."""
    return msgspec.structs.replace(
        EVENT_DECODER.decode(payload), connection_id=connection_id, dedup_key=dedup_key,
        job_id=job_id, hostname=hostname, queue=queue)


def rows_of(events: Iterable[Event]) -> list[Row]:
    """The distinct events (first copy of each dedup key), ready to copy."""
    seen: dict[str, Row] = {}
    for e in events:
        if e.dedup_key not in seen:
            ts = micros(e.timestamp)
            seen[e.dedup_key] = Row(e, ts, day_of(ts), payload_of(e),
                                    stream_of(e.kind) is Stream.SYSTEM)
    return list(seen.values())


def ensure_partitions(conn: psycopg.Connection, rows: Sequence[Row]) -> None:
    """The daily partitions the traffic rows need (outside any caller's transaction is best:
    creating one takes a lock on the log)."""
    partitions.ensure(conn, {as_date(day) for day in {r.day for r in rows if not r.system}})


def stored_keys(conn: psycopg.Connection, connection_id: str, events: Sequence[Event]
                ) -> set[str]:
    """The dedup keys of these events that the connection's log already holds."""
    by_day: dict[int, list[str]] = defaultdict(list)
    system: list[str] = []
    for e in events:  # the day the log's row has (rows_of), so the probe finds its partition
        if stream_of(e.kind) is Stream.SYSTEM:
            system.append(e.dedup_key)
        else:
            by_day[utc_date(e.timestamp)].append(e.dedup_key)
    found: set[str] = set()
    for day, keys in by_day.items():
        found.update(key for (key,) in conn.execute(
            Q["existing_keys"],
            {"connection_id": connection_id, "day": as_date(day), "keys": keys}))
    if system:
        found.update(key for (key,) in conn.execute(
            Q["existing_system_keys"], {"connection_id": connection_id, "keys": system}))
    return found


# binary COPY: the payload column is json, sent as text (json's binary input is its text as
# it is); day and ts as binary_copy ints
_EVENT_TYPES = ["uuid", "int4", "int8", "int8", "text", "text", "text", "text", "text",
                "int8", "text"]
_SYSTEM_TYPES = ["uuid", "int8", "int8", "text", "text", "text", "text", "text", "int8",
                 "text"]


def insert(conn: psycopg.Connection, connection_id: str, rows: Sequence[Row]) -> int:
    """Take the log lock, copy rows into the log at consecutive positions (in their order)
    and notify followers at commit; return the last position. Call it inside the append's
    transaction, last: the lock is held to commit. A dedup key the log holds already raises
    UniqueViolation."""
    reserved = conn.execute(Q["reserve_positions"], {
        "n": len(rows), "channel": notify.CHANNEL, "prefix": notify.prefix(connection_id),
    }).fetchone()
    assert reserved is not None
    batch, first, _ = reserved
    cid = uuid.UUID(connection_id)
    system = [(first + offset, r) for offset, r in enumerate(rows) if r.system]
    if len(system) < len(rows):
        with conn.cursor().copy(Q["copy_events"]) as copy:
            copy.set_types(_EVENT_TYPES)  # binary: no text parsing of dates, uuids, numbers
            for offset, r in enumerate(rows):
                if not r.system:
                    e = r.event
                    copy.write_row((cid, r.day, first + offset, batch, e.dedup_key, e.kind,
                                    e.job_id, e.hostname, e.queue, r.ts, r.payload))
    if system:
        with conn.cursor().copy(Q["copy_system_events"]) as copy:
            copy.set_types(_SYSTEM_TYPES)
            for position, r in system:
                e = r.event
                copy.write_row((cid, position, batch, e.dedup_key, e.kind, e.job_id,
                                e.hostname, e.queue, r.ts, r.payload))
    return int(first) + len(rows) - 1


def read_from(conn: psycopg.Connection, after: int, limit: int = 1000, *,
              connection_id: str) -> list[StoredEvent]:
    """A connection's events (both streams) after a position, in position order."""
    rows = conn.execute(
        Q["read_from"], {"after": after, "limit": limit, "connection_id": connection_id},
    ).fetchall()
    return [StoredEvent(pos, connection_id, event_of(payload, connection_id, *columns),
                        batch, ingested_at)
            for pos, batch, ingested_at, payload, *columns in rows]


def last_position(conn: psycopg.Connection, connection_id: str) -> int:
    """The position of the connection's latest event (0 for an empty log)."""
    row = conn.execute(Q["last_position"], {"connection_id": connection_id}).fetchone()
    return int(row[0]) if row else 0


def logged_connections(conn: psycopg.Connection) -> list[str]:
    """The connections whose log holds any event."""
    return [cid for (cid,) in conn.execute(Q["logged_connections"])]


def count(conn: psycopg.Connection, connection_id: str, after: int = 0) -> int:
    """How many events the connection's log holds after a position."""
    row = conn.execute(Q["count_events"],
                       {"connection_id": connection_id, "after": after}).fetchone()
    return int(row[0]) if row else 0
