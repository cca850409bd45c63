"""The one log follower: a per-process hub holding ONE PostgreSQL connection that LISTENs
for the log's notifications (`notify.CHANNEL`) and, for each connection with subscribers,
reads the new rows once (`event_log.read_from` after its cursor) and fans them out to every
subscriber's bounded queue. A subscriber whose queue is full is marked overflowed (it must
refetch its views) instead of growing memory without bound.

Used by the SSE endpoint (`sluice.api.stream`) for live events; tracked processors page the
log with `event_log.read_from` from their own recorded positions (`sluice.log.tracking`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Final

import psycopg
from psycopg_pool import ConnectionPool

from sluice.store.blocking import in_thread

from . import event_log, notify
from .event_log import StoredEvent

log = logging.getLogger(__name__)

PAGE: Final = 500  # rows per read_from call
QUEUE_SIZE: Final = 2_000  # events buffered per subscriber before it is reset
RECONNECT_S: Final = 1.0


def matches(kind: str, prefixes: list[str]) -> bool:
    return not prefixes or any(kind.startswith(p) for p in prefixes)


class Subscriber:
    """One SSE client: a bounded queue the hub fills (with the kinds it asked for only);
    overflow flips it to `reset`."""

    def __init__(self, connection_id: str, maxsize: int, kinds: list[str]) -> None:
        self.connection_id = connection_id
        self.kinds = kinds
        self.queue: asyncio.Queue[StoredEvent] = asyncio.Queue(maxsize)
        self.overflowed = False

    def offer(self, rows: list[StoredEvent]) -> None:
        if self.overflowed:
            return
        for row in rows:
            if not matches(row.event.kind, self.kinds):
                continue
            try:
                self.queue.put_nowait(row)
            except asyncio.QueueFull:
                self.overflowed = True
                return

    def clear(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()
        self.overflowed = False


class _Channel:
    """The subscribers of one connection and how far the hub has read for them."""

    def __init__(self) -> None:
        self.subscribers: set[Subscriber] = set()
        self.cursor = 0
        self.ready: asyncio.Future[None] | None = None
        self.dirty = False
        self.task: asyncio.Task[None] | None = None


class Hub:
    """Per-process fan-out of the log to SSE subscribers, fed by one LISTEN connection."""

    def __init__(self, pool_of: Callable[[], ConnectionPool | None], *,
                 queue_size: int = QUEUE_SIZE) -> None:
        self._pool_of = pool_of
        self._queue_size = queue_size
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

    async def subscribe(self, connection_id: str, kinds: list[str] | None = None
                        ) -> tuple[Subscriber, int]:
        """Register a subscriber (of events whose kind starts with one of `kinds`, all when
        empty); returns it with the position after which it gets events."""
        channel = self._channels.get(connection_id)
        if channel is None:
            channel = self._channels[connection_id] = _Channel()
        sub = Subscriber(connection_id, self._queue_size, kinds or [])
        channel.subscribers.add(sub)  # before the cursor is known: nothing can slip between
        try:
            if channel.ready is None or (channel.ready.done() and channel.ready.exception()):
                channel.ready = asyncio.ensure_future(self._init(connection_id, channel))
            await asyncio.shield(channel.ready)
        except BaseException:
            self.unsubscribe(sub)
            raise
        return sub, channel.cursor

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

    def cursor(self, connection_id: str) -> int:
        channel = self._channels.get(connection_id)
        return channel.cursor if channel else 0

    def read(self, connection_id: str, after: int, limit: int = PAGE) -> list[StoredEvent]:
        """Blocking: a page of a connection's log after a position."""
        with self._pool().connection() as conn:
            return event_log.read_from(conn, after, limit=limit, connection_id=connection_id)

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
                    # no await from here to the cursor update: a subscriber sees the queue
                    # and the cursor move together (its reset resumes at the cursor)
                    for sub in list(channel.subscribers):
                        sub.offer(rows)
                    if rows:
                        channel.cursor = rows[-1].position
                    if len(rows) < PAGE:
                        break
            except psycopg.Error as exc:
                log.warning("SSE read failed: %s; retrying", type(exc).__name__)
                channel.dirty = True
                await asyncio.sleep(RECONNECT_S)
