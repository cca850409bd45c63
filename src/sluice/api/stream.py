"""GET /api/events/stream: a connection's events as Server-Sent Events, live from any replica.

The log follower (`sluice.log.follow.Hub`: one LISTEN connection per process, paging, each
event encoded once into a window shared by the connection's subscribers) feeds each
subscriber; this module writes what the hub has for it, all of it per write. A subscriber
that fell out of the window gets `event: reset` (refetch your views).

`id:` is the log position: a client reconnecting with Last-Event-ID (or ?last_event_id=) first
pages through the log from there, then continues live, skipping what it already sent, so
nothing is missed and nothing repeats.

An open stream lives only as long as its key: the keys of open streams are checked every
KEY_CHECK_S, and the streams of a key that was revoked or lost the `read` scope end (with
`event: end`).

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
from litestar.response import Stream

from sluice.api.auth import Principal, requires
from sluice.api.errors import ApiError, ErrorBody
from sluice.api.params import known_query
from sluice.log.event_log import StoredEvent
from sluice.log.follow import PAGE, Hub, Subscriber, frame, matches
from sluice.store import keys
from sluice.store.blocking import in_thread

log = logging.getLogger(__name__)

KEEPALIVE_S: Final = 15.0
RETRY_MS: Final = 2_000  # browsers reconnect after this long
LISTEN_WAIT_S: Final = 5.0  # a request waits this long for the listener to (re)connect
KEY_CHECK_S: Final = 0.25  # how often the keys of open streams are checked
SCOPE: Final = "read"
_STATE_KEY: Final = "sluice_stream_hub"
CONNECTED: Final = b"retry: %d\nid: %%d\n: connected\n\n" % RETRY_MS
KEEPALIVE: Final = b": keep-alive\n\n"


def _end(reason: str) -> bytes:
    body = msgspec.json.encode(ErrorBody("stream_closed", reason))
    return b"event: end\ndata: %s\n\n" % body


# -- the endpoint ---------------------------------------------------------------------------

def _catch_up_page(rows: list[StoredEvent], kinds: list[str]) -> bytes:
    return b"".join(frame(r) for r in rows if matches(r.event.kind, kinds))


async def event_stream(hub: Hub, connection_id: str, last_id: int | None,
                       kinds: list[str], owner: str | None = None) -> AsyncIterator[bytes]:
    """The stream's bytes: a `connected` comment, the catch-up after `last_id` (if any),
    then live events, each write holding everything the subscriber has not been sent."""
    sub = await hub.subscribe(connection_id, kinds, owner)
    try:
        start = sub.cursor
        if last_id is not None and last_id > start and last_id > await in_thread(
                hub.last_position, connection_id):
            # an id from the future (another database's log): resume from where this
            # subscription starts instead of skipping events until positions catch up
            last_id = None
        # the id gives a browser its position before any event comes: if the server
        # restarts first, its reconnection (Last-Event-ID) still resumes from here
        yield CONNECTED % (start if last_id is None else last_id)
        if last_id is not None:  # catch up from the log, page by page (memory stays bounded)
            last = last_id
            while True:
                rows = await in_thread(hub.read, connection_id, last)
                if rows:
                    last = rows[-1].position
                    page = _catch_up_page(rows, kinds)
                    if page:
                        yield page
                # done at the log's end, once the live window holds all that follows (a
                # window that moved past `last` meanwhile: read on)
                if not rows or (len(rows) < PAGE and hub.evicted(connection_id) <= last):
                    break
            sub.cursor = last
        async for data in _live(hub, sub):
            yield data
    finally:
        hub.unsubscribe(sub)


async def _live(hub: Hub, sub: Subscriber) -> AsyncIterator[bytes]:
    while True:
        if sub.closed is not None:
            yield _end(sub.closed)
            return
        data = hub.take(sub)
        if data:
            yield data
            continue
        try:
            await asyncio.wait_for(sub.wake.wait(), KEEPALIVE_S)
        except TimeoutError:
            yield KEEPALIVE


def get_hub(app: Litestar) -> Hub | None:
    hub = app.state.get(_STATE_KEY)
    return hub if isinstance(hub, Hub) else None


@get("/api/events/stream", dependencies={"principal": requires(SCOPE)}, tags=["events"],
     guards=[known_query],
     summary="The connection's events as SSE (id = log position; Last-Event-ID resumes)",
     media_type="text/event-stream")
async def stream_events(
    request: Request[Any, Any, Any],
    principal: NamedDependency[Principal],
    last_event_id_header: Annotated[str | None, HeaderParameter(name="Last-Event-ID")] = None,
    last_event_id: Annotated[int | None, QueryParameter(
        description="resume after this log position (as the Last-Event-ID header)")] = None,
    kind: Annotated[list[str] | None, QueryParameter(
        description="kind prefixes, e.g. job. or job.failed (repeatable)")] = None,
) -> Stream:
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
    return Stream(
        event_stream(hub, principal.connection_id, resume, kinds, principal.key_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


# -- keys of open streams -------------------------------------------------------------------

async def watch_keys(app: Litestar, hub: Hub, interval: float = KEY_CHECK_S) -> None:
    """Every `interval`: end the open streams whose key is revoked, gone, or no longer
    grants `read` (one query for all the process's streams). A database outage leaves the
    streams open (the hub itself waits for the database then)."""
    while True:
        await asyncio.sleep(interval)
        owners = hub.owners()
        pool = app.state.get("pool")
        if not owners or pool is None:
            continue
        try:
            live = await in_thread(_keys_granting, pool, owners)
        except Exception as exc:
            log.warning("SSE key check failed: %s", type(exc).__name__)
            continue
        gone = owners - live
        if gone:
            closed = hub.close_owned(gone, "the API key was revoked or lost the read scope")
            log.info("ended %d event stream(s) of %d revoked key(s)", closed, len(gone))


def _keys_granting(pool: Any, owners: set[str]) -> set[str]:
    with pool.connection() as conn:
        return keys.keys_granting(conn, owners, SCOPE)


@contextlib.asynccontextmanager
async def STREAM_LIFESPAN(app: Litestar) -> AsyncIterator[None]:
    """Start this process's LISTEN connection, fan-out and key checks; stop them at
    shutdown."""
    hub = Hub(lambda: app.state.get("pool"))
    app.state[_STATE_KEY] = hub
    hub.start()
    watcher = asyncio.create_task(watch_keys(app, hub), name="sluice-sse-keys")
    try:
        yield
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await hub.stop()
        app.state.pop(_STATE_KEY, None)
