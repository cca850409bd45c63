"""The one log follower: a per-process hub holding ONE PostgreSQL connection that LISTENs
for the log's notifications (`notify.CHANNEL`) and, for each connection with subscribers,
reads the new rows once (`event_log.read_from` after its cursor) and encodes each once, as
its SSE frame, into that connection's window of recent frames.

Subscribers share the window: each holds only a position in it and a wake-up, so a slow
subscriber costs nothing while it is behind, and a woken one takes everything it has not
sent in one write. A subscriber that falls out of the window (more than `retain` events or
`retain_bytes` behind) gets a reset (refetch your views) instead of growing memory.

Used by the SSE endpoint (`sluice.api.stream`) for live events; tracked processors page the
log with `event_log.read_from` from their own recorded positions (`sluice.log.tracking`).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import Final

import msgspec
import psycopg
from psycopg_pool import ConnectionPool

from sluice.domain.events import EVENT_ENCODER
from sluice.store.blocking import in_thread

from . import event_log, notify
from .event_log import StoredEvent

log = logging.getLogger(__name__)

PAGE: Final = 500  # rows per read_from call
RETAIN: Final = 20_000  # recent frames a connection's window keeps
RETAIN_BYTES: Final = 16 * 1024 * 1024
MAX_WRITE_BYTES: Final = 1024 * 1024  # at most this much of a subscriber's backlog per write
RECONNECT_S: Final = 1.0


def matches(kind: str, prefixes: list[str]) -> bool:
    return not prefixes or any(kind.startswith(p) for p in prefixes)


def frame(row: StoredEvent) -> bytes:
    """A stored event as one SSE message: `id:` its log position, `data:` the event."""
    return b"id: %d\ndata: %s\n\n" % (row.position, EVENT_ENCODER.encode(row.event))


class Subscriber:
    """One SSE client: the position after which it has not been sent anything (`cursor`),
    the kinds it asked for, and a wake-up the hub sets when there is more (or when it is
    closed, e.g. its key revoked)."""

    def __init__(self, connection_id: str, kinds: list[str], owner: str | None) -> None:
        self.connection_id = connection_id
        self.kinds = kinds
        self.owner = owner  # who opened it (the API key's id), for `Hub.close_owned`
        self.cursor = 0
        self.wake = asyncio.Event()
        self.closed: str | None = None  # why it was closed

    def close(self, reason: str) -> None:
        self.closed = reason
        self.wake.set()


class Window:
    """A connection's recent frames in position order (each encoded once, shared by all its
    subscribers), bounded by count and bytes; `evicted` is the last position dropped."""

    def __init__(self, retain: int, retain_bytes: int) -> None:
        self.positions: list[int] = []
        self.kinds: list[str] = []
        self.frames: list[bytes] = []
        self.size = 0
        self.evicted = 0
        self._retain = retain
        self._retain_bytes = retain_bytes

    def extend(self, rows: Iterable[StoredEvent]) -> None:
        for row in rows:
            data = frame(row)
            self.positions.append(row.position)
            self.kinds.append(row.event.kind)
            self.frames.append(data)
            self.size += len(data)
        # drop the oldest while over either bound (the newest frame always stays)
        count, drop, size = len(self.frames), 0, self.size
        while drop < count - 1 and (count - drop > self._retain or size > self._retain_bytes):
            size -= len(self.frames[drop])
            drop += 1
        if drop:
            self.evicted = self.positions[drop - 1]
            del self.positions[:drop], self.kinds[:drop], self.frames[:drop]
            self.size = size

    def after(self, cursor: int, kinds: list[str], limit: int = MAX_WRITE_BYTES
              ) -> tuple[bytes, int]:
        """(the frames after `cursor` of the given kinds, joined; the position they reach),
        at most about `limit` bytes; the position moves past skipped kinds too."""
        start = bisect.bisect_right(self.positions, cursor)
        end, total = start, 0
        stop = len(self.frames)
        while end < stop and total < limit:
            total += len(self.frames[end])
            end += 1
        if end == start:
            return b"", cursor
        if kinds:
            picked = [self.frames[i] for i in range(start, end)
                      if matches(self.kinds[i], kinds)]
        else:
            picked = self.frames[start:end]
        return b"".join(picked), self.positions[end - 1]


class _Channel:
    """The subscribers of one connection, its window and how far the hub has read."""

    def __init__(self, retain: int, retain_bytes: int) -> None:
        self.subscribers: set[Subscriber] = set()
        self.window = Window(retain, retain_bytes)
        self.cursor = 0
        self.ready: asyncio.Future[None] | None = None
        self.dirty = False
        self.task: asyncio.Task[None] | None = None


class Reset(msgspec.Struct):
    reason: str
    position: int


class Hub:
    """Per-process fan-out of the log to SSE subscribers, fed by one LISTEN connection."""

    def __init__(self, pool_of: Callable[[], ConnectionPool | None], *,
                 retain: int = RETAIN, retain_bytes: int = RETAIN_BYTES) -> None:
        self._pool_of = pool_of
        self._retain = retain
        self._retain_bytes = retain_bytes
        self._channels: dict[str, _Channel] = {}
        self._listener: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        self._listener = asyncio.create_task(self._listen(), name="sluice-sse-listener")

    async def stop(self) -> None:
        tasks = [t for t in [self._listener, *(c.task for c in self._channels.values())] if t]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for channel in self._channels.values():
            for sub in channel.subscribers:
                sub.close("the server is shutting down")
        self._channels.clear()

    def _pool(self) -> ConnectionPool:
        pool = self._pool_of()
        if pool is None:
            raise psycopg.OperationalError("the database pool is not open yet")
        return pool

    async def _listen(self) -> None:
        while True:
            try:
                while self._pool_of() is None:  # the app opens its pool at start-up
                    await asyncio.sleep(0.05)
                conninfo = str(self._pool().conninfo)
                async with await psycopg.AsyncConnection.connect(conninfo,
                                                                 autocommit=True) as conn:
                    await conn.execute(f"LISTEN {notify.CHANNEL}")
                    self.listening.set()
                    for cid in list(self._channels):  # whatever was missed while away
                        self._kick(cid)
                    async for note in conn.notifies():
                        cid, pos = notify.parse(note.payload)
                        channel = self._channels.get(cid)
                        if channel is not None and (pos is None or pos > channel.cursor):
                            self._kick(cid)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a lost connection: reconnect, then catch up
                log.warning("SSE listener: %s; reconnecting", type(exc).__name__)
            self.listening.clear()
            await asyncio.sleep(RECONNECT_S)

    # -- subscriptions ------------------------------------------------------------------

    async def subscribe(self, connection_id: str, kinds: list[str] | None = None,
                        owner: str | None = None) -> Subscriber:
        """Register a subscriber (of events whose kind starts with one of `kinds`, all when
        empty); its `cursor` is the position after which it gets events."""
        channel = self._channels.get(connection_id)
        if channel is None:
            channel = self._channels[connection_id] = _Channel(self._retain,
                                                               self._retain_bytes)
        sub = Subscriber(connection_id, kinds or [], owner)
        channel.subscribers.add(sub)  # before the cursor is known: nothing can slip between
        try:
            if channel.ready is None or (channel.ready.done() and channel.ready.exception()):
                channel.ready = asyncio.ensure_future(self._init(connection_id, channel))
            await asyncio.shield(channel.ready)
        except BaseException:
            self.unsubscribe(sub)
            raise
        sub.cursor = channel.cursor
        return sub

    async def _init(self, connection_id: str, channel: _Channel) -> None:
        channel.cursor = await in_thread(self.last_position, connection_id)
        self._kick(connection_id)  # anything committed since

    def last_position(self, connection_id: str) -> int:
        with self._pool().connection() as conn:
            return event_log.last_position(conn, connection_id)

    def unsubscribe(self, sub: Subscriber) -> None:
        channel = self._channels.get(sub.connection_id)
        if channel is None:
            return
        channel.subscribers.discard(sub)
        if not channel.subscribers:
            del self._channels[sub.connection_id]
            if channel.task is not None:
                channel.task.cancel()

    def owners(self) -> set[str]:
        """Who opened the open subscriptions (their `owner`s)."""
        return {s.owner for c in self._channels.values() for s in c.subscribers
                if s.owner is not None and s.closed is None}

    def close_owned(self, owners: set[str], reason: str) -> int:
        """Close every subscription opened by one of `owners`; how many were."""
        closed = 0
        for channel in self._channels.values():
            for sub in channel.subscribers:
                if sub.owner in owners and sub.closed is None:
                    sub.close(reason)
                    closed += 1
        return closed

    def cursor(self, connection_id: str) -> int:
        channel = self._channels.get(connection_id)
        return channel.cursor if channel else 0

    def read(self, connection_id: str, after: int, limit: int = PAGE) -> list[StoredEvent]:
        """Blocking: a page of a connection's log after a position."""
        with self._pool().connection() as conn:
            return event_log.read_from(conn, after, limit=limit, connection_id=connection_id)

    def evicted(self, connection_id: str) -> int:
        """The last position that left the connection's window (0: none yet)."""
        channel = self._channels.get(connection_id)
        return channel.window.evicted if channel else 0

    def take(self, sub: Subscriber) -> bytes:
        """What the subscriber has not been sent yet, as one write (a reset if it fell out
        of the window); empty when it is up to date. Moves its cursor."""
        sub.wake.clear()
        channel = self._channels.get(sub.connection_id)
        if channel is None:
            return b""
        window = channel.window
        if sub.cursor < window.evicted:  # frames it never got have left the window
            sub.cursor = channel.cursor
            body = msgspec.json.encode(Reset("client too slow; refetch", sub.cursor))
            return b"event: reset\nid: %d\ndata: %s\n\n" % (sub.cursor, body)
        data, reached = window.after(sub.cursor, sub.kinds)
        sub.cursor = reached
        if window.positions and reached < window.positions[-1]:
            sub.wake.set()  # more than one write's worth: come back at once
        return data

    # -- fan-out ------------------------------------------------------------------------

    def _kick(self, connection_id: str) -> None:
        channel = self._channels.get(connection_id)
        if channel is None:
            return
        channel.dirty = True
        if channel.task is None or channel.task.done():
            channel.task = asyncio.create_task(self._drain(connection_id, channel))

    async def _drain(self, connection_id: str, channel: _Channel) -> None:
        if channel.ready is not None:
            await asyncio.shield(channel.ready)
        while channel.dirty and self._channels.get(connection_id) is channel:
            channel.dirty = False
            try:
                while True:
                    rows = await in_thread(self.read, connection_id, channel.cursor)
                    # no await from here to the cursor update: a subscriber sees the window
                    # and the cursor move together (its reset resumes at the cursor)
                    if rows:
                        channel.window.extend(rows)
                        channel.cursor = rows[-1].position
                        for sub in channel.subscribers:
                            sub.wake.set()
                    if len(rows) < PAGE:
                        break
            except psycopg.Error as exc:
                log.warning("SSE read failed: %s; retrying", type(exc).__name__)
                channel.dirty = True
                await asyncio.sleep(RECONNECT_S)
