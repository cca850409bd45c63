"""The append-only event log: append a batch with dedup and projection; read by position."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence

import msgspec
import psycopg

from sluice.domain.events import EVENT_DECODER, EVENT_ENCODER, Event, Rejection
from sluice.projections.project import project_batch

from . import partitions
from .sqlfiles import queries

Q = queries(__file__)


class RejectedItem(msgspec.Struct, frozen=True):
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


def _day(ts: float) -> dt.date:
    return dt.datetime.fromtimestamp(ts, dt.UTC).date()


def append(
    conn: psycopg.Connection, connection_id: str, items: Sequence[Event | Rejection]
) -> AppendResult:
    """Store the events of a batch (rejections are reported by index), project them in the
    same transaction, and notify followers. Events already in the log count as duplicates."""
    rejected = [
        RejectedItem(i, item.reason, item.field)
        for i, item in enumerate(items)
        if isinstance(item, Rejection)
    ]
    events = [item for item in items if isinstance(item, Event)]
    if not events:
        return AppendResult(accepted=0, duplicates=0, rejected=rejected)
    partitions.ensure(conn, {_day(e.timestamp) for e in events})
    with conn.transaction():
        conn.execute(Q["lock_log"])
        row = conn.execute(Q["next_batch"]).fetchone()
        assert row is not None
        stored = conn.execute(
            Q["append_events"],
            {
                "connection_id": connection_id,
                "batch": row[0],
                "dedup_keys": [e.dedup_key for e in events],
                "kinds": [e.kind for e in events],
                "job_ids": [e.job_id for e in events],
                "hostnames": [e.hostname for e in events],
                "queues": [e.queue for e in events],
                "ts": [e.timestamp for e in events],
                "payloads": [EVENT_ENCODER.encode(e).decode() for e in events],
            },
        ).fetchall()
        by_key = {e.dedup_key: e for e in events}
        new_events = [by_key[key] for _, key in stored]
        last = max((pos for pos, _ in stored), default=None)
        if last is not None:
            project_batch(conn, connection_id, new_events, last)
            conn.execute(Q["notify"], (f"{connection_id}:{last}",))
    return AppendResult(
        accepted=len(stored),
        duplicates=len(events) - len(stored),
        rejected=rejected,
        last_position=last,
    )


def _stored(rows: list[tuple[int, str, str]]) -> list[StoredEvent]:
    return [StoredEvent(pos, conn_id, EVENT_DECODER.decode(payload)) for pos, conn_id, payload
            in rows]


def read_from(
    conn: psycopg.Connection, after: int, limit: int = 1000, connection_id: str | None = None
) -> list[StoredEvent]:
    """Events after a position, in position order (optionally of one connection)."""
    if connection_id is None:
        rows = conn.execute(Q["read_from"], {"after": after, "limit": limit}).fetchall()
    else:
        rows = conn.execute(
            Q["read_connection_from"],
            {"after": after, "limit": limit, "connection_id": connection_id},
        ).fetchall()
    return _stored(rows)


def create_connection(
    conn: psycopg.Connection,
    name: str,
    *,
    connection_id: str | None = None,
    daily_limit: int | None = None,
    retention_hours: int = 168,
) -> str:
    import uuid

    cid = connection_id or str(uuid.uuid4())
    conn.execute(
        Q["create_connection"],
        {"id": cid, "name": name, "daily_limit": daily_limit, "retention_hours": retention_hours},
    )
    return cid


def now() -> float:
    return time.time()
