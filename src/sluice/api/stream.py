"""GET /api/events/stream: a connection's events as Server-Sent Events, live from any replica.

The log follower (`sluice.log.follow.Hub`: one LISTEN connection per process, paging and
fan-out) feeds each subscriber; this module frames what it is given. A subscriber whose
queue overflowed gets `event: reset` (refetch your views).

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
from collections.abc import AsyncIterator
from typing import Annotated, Any, Final

import msgspec
from litestar import Litestar, Request, get
from litestar.di import NamedDependency
from litestar.params import HeaderParameter, QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from sluice.api.auth import Principal, requires
from sluice.api.errors import ApiError
from sluice.domain.events import EVENT_ENCODER
from sluice.log.event_log import StoredEvent
from sluice.log.follow import PAGE, Hub, matches
from sluice.store.blocking import in_thread

log = logging.getLogger(__name__)

KEEPALIVE_S: Final = 15.0
RETRY_MS: Final = 2_000  # browsers reconnect after this long
LISTEN_WAIT_S: Final = 5.0  # a request waits this long for the listener to (re)connect
_STATE_KEY: Final = "sluice_stream_hub"


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
        last = start if last_id is None else last_id
        if last_id is not None and last_id > start and last_id > await in_thread(
                hub.last_position, connection_id):
            # an id from the future (another database's log): resume from where this
            # subscription starts instead of skipping events until positions catch up
            last = start
        # the id gives a browser its position before any event comes: if the server
        # restarts first, its reconnection (Last-Event-ID) still resumes from here
        yield ServerSentEventMessage(comment="connected", data=None, retry=RETRY_MS, id=last)
        if last_id is not None:  # catch up from the log, page by page (memory stays bounded)
            while True:
                rows = await in_thread(hub.read, connection_id, last)
                for row in rows:
                    last = row.position
                    if matches(row.event.kind, kinds):
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
