"""The append-only event log: append a batch with dedup and projection; read by position."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence

import msgspec
import psycopg

from sluice.domain.events import EVENT_DECODER, EVENT_ENCODER, Event, Rejection
from sluice.projections.project import is_job_event, project_batch

from . import partitions
from .binary_copy import as_date, day_of, micros, utc_date
from .sqlfiles import queries

Q = queries(__file__)
# Runs in an append's transaction with the number of events it stored (e.g. a usage count).
OnStored = Callable[[psycopg.Connection, int], None]


class RejectedItem(msgspec.Struct, frozen=True, omit_defaults=True):
    """An event of a batch that was not stored: its index in the batch and why."""

    index: int
    reason: str
    field: str | None = None


class AppendResult(msgspec.Struct):
    accepted: int
    duplicates: int
    rejected: list[RejectedItem]
    last_position: int | None = None


class StoredEvent(msgspec.Struct, frozen=True):
    position: int
    connection_id: str
    event: Event


class _Row(msgspec.Struct, gc=False):
    event: Event
    ts: int  # binary_copy.micros of the source time
    day: int  # binary_copy.day_of that
    payload: str


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


def _rows(events: Sequence[Event]) -> list[_Row]:
    """The batch's distinct events (first copy of each dedup key), ready to copy."""
    seen: dict[str, _Row] = {}
    for e in events:
        if e.dedup_key not in seen:
            ts = micros(e.timestamp)
            seen[e.dedup_key] = _Row(e, ts, day_of(ts), payload_of(e))
    return list(seen.values())


def stored_keys(conn: psycopg.Connection, connection_id: str, events: Sequence[Event]
                ) -> set[str]:
    """The dedup keys of these events that the connection's log already holds."""
    by_day: dict[int, list[str]] = defaultdict(list)
    for e in events:  # the day the log's row has (_rows), so the probe finds its partition
        by_day[utc_date(e.timestamp)].append(e.dedup_key)
    found: set[str] = set()
    for day, keys in by_day.items():
        found.update(key for (key,) in conn.execute(
            Q["existing_keys"],
            {"connection_id": connection_id, "day": as_date(day), "keys": keys}))
    return found


def _not_stored(conn: psycopg.Connection, connection_id: str, rows: list[_Row]) -> list[_Row]:
    found = stored_keys(conn, connection_id, [r.event for r in rows])
    return [r for r in rows if r.event.dedup_key not in found]


# the payload column is json, sent as text: json's binary input is its text as it is
# and day and ts as binary_copy ints
_EVENT_TYPES = ["uuid", "int4", "int8", "int8", "text", "text", "text", "text", "text",
                "int8", "text"]


def _insert(conn: psycopg.Connection, connection_id: str, rows: list[_Row]) -> int:
    """Take the log lock, copy rows into the log at consecutive positions and notify
    followers at commit; return the last position."""
    reserved = conn.execute(Q["reserve_positions"],
                            {"n": len(rows), "connection_id": connection_id}).fetchone()
    assert reserved is not None
    batch, first, _ = reserved
    cid = uuid.UUID(connection_id)
    with conn.cursor().copy(Q["copy_events"]) as copy:
        copy.set_types(_EVENT_TYPES)  # binary COPY: no text parsing of dates, uuids, numbers
        for offset, r in enumerate(rows):
            e = r.event
            copy.write_row((cid, r.day, first + offset, batch, e.dedup_key, e.kind,
                            e.job_id, e.hostname, e.queue, r.ts, r.payload))
    return int(first) + len(rows) - 1


def _split_held(rows: list[_Row], held: set[str]) -> tuple[list[_Row], list[_Row]]:
    """(rows to store now, rows of the held jobs, for later)."""
    if not held:
        return rows, []
    now: list[_Row] = []
    later: list[_Row] = []
    for r in rows:
        (later if r.event.job_id in held and is_job_event(r.event) else now).append(r)
    return now, later


def _project_and_insert(conn: psycopg.Connection, connection_id: str, rows: list[_Row],
                        *, wait: bool = True, on_stored: OnStored | None = None
                        ) -> tuple[list[_Row], int | None, list[_Row]]:
    """Project the rows and insert them into the log, in one transaction (a savepoint when
    the caller has one open): (rows stored, last position, rows left for later). Without
    `wait`, the rows of jobs that another append is projecting are left for later instead of
    waiting for it. `on_stored(conn, n)` runs in the transaction once n rows are stored.

    Optimistic: no probe for duplicates first. When the log's unique key finds some (a
    resent batch, or a key a sender reused), the rollback takes back the projection with the
    insert (and the log lock, and the notification) and it is redone with only the new rows,
    so read models never fold an event the log did not store. Each retry has fewer rows (the
    conflicting ones are committed, hence seen by the probe), and takes the locks again in
    the same order as any append."""
    while rows:
        try:
            with conn.transaction():
                held = project_batch(conn, connection_id, [r.event for r in rows], wait=wait)
                now, later = _split_held(rows, held)
                last = _insert(conn, connection_id, now) if now else None
                if now and on_stored is not None:
                    on_stored(conn, len(now))
                return now, last, later
        except psycopg.errors.UniqueViolation:
            rows = _not_stored(conn, connection_id, rows)
    return rows, None, []


def append(
    conn: psycopg.Connection, connection_id: str, items: Sequence[Event | Rejection],
    *, on_stored: OnStored | None = None,
) -> AppendResult:
    """Store the events of a batch (rejections are reported by index), project them in the
    same transaction, and notify followers. Events already in the log count as duplicates.

    Projection runs before the log lock (under per-job locks), so concurrent appends overlap
    everywhere but the insert. Duplicates are found by the insert's unique key, not probed
    for beforehand (see _project_and_insert).

    Outside a transaction, jobs that another append is projecting do not hold up the rest:
    the batch's other events are projected and stored in one transaction, then those jobs'
    events in a second one, which waits for them (a sender that retries the batch meanwhile
    finds the first part stored, as duplicates). Inside the caller's transaction, one
    transaction (a savepoint) waits for all. `on_stored(conn, n)` runs in each transaction
    that stores n events.
    """
    rejected = [
        RejectedItem(i, item.reason, item.field)
        for i, item in enumerate(items)
        if isinstance(item, Rejection)
    ]
    events = [item for item in items if isinstance(item, Event)]
    if not events:
        return AppendResult(accepted=0, duplicates=0, rejected=rejected)
    rows = _rows(events)
    partitions.ensure(conn, {as_date(day) for day in {r.day for r in rows}})
    split = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    fresh, last, later = _project_and_insert(conn, connection_id, rows, wait=not split,
                                             on_stored=on_stored)
    if later:  # the jobs another append held: wait for them now
        more, last_more, _ = _project_and_insert(conn, connection_id, later,
                                                 on_stored=on_stored)
        fresh += more
        last = last_more if last_more is not None else last
    return AppendResult(
        accepted=len(fresh),
        duplicates=len(events) - len(fresh),
        rejected=rejected,
        last_position=last,
    )


def read_from(
    conn: psycopg.Connection, after: int, limit: int = 1000, *, connection_id: str
) -> list[StoredEvent]:
    """A connection's events after a position, in position order."""
    rows = conn.execute(
        Q["read_connection_from"],
        {"after": after, "limit": limit, "connection_id": connection_id},
    ).fetchall()
    return [StoredEvent(pos, cid, event_of(payload, cid, *columns))
            for pos, cid, payload, *columns in rows]
