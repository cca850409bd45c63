"""Rebuild every read model from the event log with the live projector code.

The log is replayed append by append (its `batch` column), in position order, so the
projector sees exactly the sequence of batches it saw live and yields the same tables.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator

import msgspec
import psycopg

from sluice.domain.events import Event
from sluice.store import event_log
from sluice.store.sqlfiles import queries

from .project import project_batch

Q = queries(__file__, "replay.sql")


class ReplayStats(msgspec.Struct):
    events: int
    batches: int
    seconds: float

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


class Batch(msgspec.Struct):
    """One original append: its connection, events and when it was received."""

    connection_id: str
    events: list[Event]
    received_at: dt.datetime


def _batches(conn: psycopg.Connection, connection_id: str) -> Iterator[Batch]:
    current: Batch | None = None
    last_batch = None
    with conn.cursor(name="sluice_replay") as cur:
        cur.itersize = 5000
        cur.execute(Q["stream_log"], {"connection_id": connection_id})
        for batch, _position, cid, payload, ingested_at, *columns in cur:
            if batch != last_batch:
                if current is not None:
                    yield current
                current = Batch(cid, [], ingested_at)
                last_batch = batch
            assert current is not None
            current.events.append(event_log.event_of(payload, cid, *columns))
    if current is not None:
        yield current


def replay(conn: psycopg.Connection, progress: Callable[[int, int], None] | None = None
           ) -> ReplayStats:
    """Empty the read models and fold the whole log back into them, in one transaction."""
    started = time.perf_counter()
    done = batches = 0
    with conn.transaction():
        conn.execute(event_log.Q["lock_log"])  # the appenders' lock: no appends meanwhile
        total_row = conn.execute(Q["count_events"]).fetchone()
        total = int(total_row[0]) if total_row else 0
        conn.execute(Q["truncate_read_models"])
        connections = [row[0] for row in conn.execute(Q["connections"]).fetchall()]
        for connection in connections:
            # a server-side cursor streams the log while the same session writes the models
            for batch in _batches(conn, connection):
                project_batch(conn, batch.connection_id, batch.events, batch.received_at)
                done += len(batch.events)
                batches += 1
                if progress is not None:
                    progress(done, total)
    return ReplayStats(events=done, batches=batches, seconds=time.perf_counter() - started)
