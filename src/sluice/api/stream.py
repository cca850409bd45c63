"""GET /api/events/stream: a connection's events as Server-Sent Events, live from any replica.

One `Hub` per API process holds ONE PostgreSQL connection LISTENing on 'sluice_events' (the
event log NOTIFYs '<connection_id>:<last_position>' after each append commits). For each
connection with subscribers it reads the new rows once (event_log.read_from after its cursor)
and fans them out to every subscriber's bounded queue. A subscriber whose queue is full is
marked overflowed and gets `event: reset` (refetch your views) instead of unbounded memory.

`id:` is the log position: a client reconnecting with Last-Event-ID (or ?last_event_id=) first
pages through the log from there, then continues live, skipping what it already sent, so
nothing is missed and nothing repeats.

Wire the hub into the app with the lifespan hook `STREAM_LIFESPAN` (an async context manager
factory taking the app); it needs `app.state.pool` (a psycopg ConnectionPool) once running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, Final

import msgspec
import psycopg
from litestar import Litestar, Request, get
from litestar.di import NamedDependency
from litestar.params import HeaderParameter, QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage
from psycopg_pool import ConnectionPool

from sluice.api.auth import Principal, requires
from sluice.api.deps import in_thread
from sluice.api.errors import ApiError
from sluice.domain.events import EVENT_ENCODER
from sluice.store import event_log
from sluice.store.event_log import StoredEvent

log = logging.getLogger(__name__)

CHANNEL: Final = "sluice_events"
PAGE: Final = 500  # rows per read_from call
QUEUE_SIZE: Final = 2_000  # events buffered per subscriber before it is reset
KEEPALIVE_S: Final = 15.0
RECONNECT_S: Final = 1.0
RETRY_MS: Final = 2_000  # browsers reconnect after this long
LISTEN_WAIT_S: Final = 5.0  # a request waits this long for the listener to (re)connect
_STATE_KEY: Final = "sluice_stream_hub"
_LAST_POSITION_SQL: Final = (
    "SELECT coalesce(max(position), 0) FROM events WHERE connection_id = %s"
)


def _matches(kind: str, prefixes: list[str]) -> bool:
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
            if not _matches(row.event.kind, self.kinds):
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
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    for cid in list(self._channels):  # whatever was missed while away
                        self._kick(cid)
                    async for note in conn.notifies():
                        cid, _, pos = note.payload.partition(":")
                        channel = self._channels.get(cid)
                        if channel is not None and (not pos.isdigit()
                                                    or int(pos) > channel.cursor):
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
            row = conn.execute(_LAST_POSITION_SQL, (connection_id,)).fetchone()
            return int(row[0]) if row else 0

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


# -- the endpoint ---------------------------------------------------------------------------

def _message(row: StoredEvent) -> ServerSentEventMessage:
    return ServerSentEventMessage(data=EVENT_ENCODER.encode(row.event).decode(),
                                  id=row.position)


class _Reset(msgspec.Struct):
    reason: str
    position: int


async def event_stream(hub: Hub, connection_id: str, last_id: int | None,
                       kinds: list[str]) -> AsyncIterator[ServerSentEventMessage]:
    sub, start = await hub.subscribe(connection_id, kinds)
    try:
        yield ServerSentEventMessage(comment="connected", data=None, retry=RETRY_MS)
        last = start if last_id is None else last_id
        if last_id is not None and last_id > start and last_id > await in_thread(
                hub.last_position, connection_id):
            # an id from the future (another database's log): resume from where this
            # subscription starts instead of skipping events until positions catch up
            last = start
        if last_id is not None:  # catch up from the log, page by page (memory stays bounded)
            while True:
                rows = await in_thread(hub.read, connection_id, last)
                for row in rows:
                    last = row.position
                    if _matches(row.event.kind, kinds):
                        yield _message(row)
                if len(rows) < PAGE:
                    break
        while True:
            if sub.overflowed:
                sub.clear()
                last = max(last, hub.cursor(connection_id))
                body = msgspec.json.encode(_Reset("client too slow; refetch", last)).decode()
                yield ServerSentEventMessage(event="reset", data=body, id=last)
                continue
            try:
                row = await asyncio.wait_for(sub.queue.get(), KEEPALIVE_S)
            except TimeoutError:
                yield ServerSentEventMessage(comment="keep-alive", data=None)
                continue
            if row.position <= last:
                continue  # already sent during the catch-up
            last = row.position
            yield _message(row)
    finally:
        hub.unsubscribe(sub)


def get_hub(app: Litestar) -> Hub | None:
    hub = app.state.get(_STATE_KEY)
    return hub if isinstance(hub, Hub) else None


@get("/api/events/stream", dependencies={"principal": requires("read")}, tags=["events"],
     summary="The connection's events as SSE (id = log position; Last-Event-ID resumes)")
async def stream_events(
    request: Request[Any, Any, Any],
    principal: NamedDependency[Principal],
    last_event_id_header: Annotated[str | None, HeaderParameter(name="Last-Event-ID")] = None,
    last_event_id: Annotated[int | None, QueryParameter(
        description="resume after this log position (as the Last-Event-ID header)")] = None,
    kind: Annotated[list[str] | None, QueryParameter(
        description="kind prefixes, e.g. job. or job.failed (repeatable)")] = None,
) -> ServerSentEvent:
    hub = get_hub(request.app)
    try:
        if hub is None:
            raise TimeoutError
        # answer 503 now (not a broken stream later) while the listener cannot reach the DB
        await asyncio.wait_for(hub.listening.wait(), LISTEN_WAIT_S)
    except TimeoutError:
        raise ApiError(503, "unavailable", "the event stream is not available; retry later",
                       headers={"Retry-After": "5"}) from None
    resume = last_event_id
    if last_event_id_header is not None and last_event_id_header.strip():
        try:
            resume = int(last_event_id_header.strip())
        except ValueError:
            raise ApiError(400, "bad_request", "Last-Event-ID must be a log position",
                           field="Last-Event-ID") from None
    if resume is not None and resume < 0:
        raise ApiError(400, "bad_request", "last_event_id must be >= 0", field="last_event_id")
    kinds = [k.strip() for raw in kind or () for k in raw.split(",") if k.strip()]
    return ServerSentEvent(
        event_stream(hub, principal.connection_id, resume, kinds),
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@contextlib.asynccontextmanager
async def STREAM_LIFESPAN(app: Litestar) -> AsyncIterator[None]:
    """Start this process's LISTEN connection and fan-out; stop them at shutdown."""
    hub = Hub(lambda: app.state.get("pool"))
    app.state[_STATE_KEY] = hub
    hub.start()
    try:
        yield
    finally:
        await hub.stop()
        app.state.pop(_STATE_KEY, None)
