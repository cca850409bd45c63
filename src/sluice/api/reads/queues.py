"""GET /api/queues, /api/queues/{name} and /api/queues/{name}/series?window=."""

from __future__ import annotations

import datetime as dt

import msgspec
from litestar import Controller, get
from litestar.params import FromPath, FromQuery
from psycopg_pool import ConnectionPool

from sluice.api.auth import requires
from sluice.api.deps import get_pool, in_thread
from sluice.api.errors import ApiError
from sluice.store.reads import queues as store

from . import _params
from ._params import AnyRequest, Caller

MAX_WINDOW = dt.timedelta(days=7)


class QueueList(msgspec.Struct):
    items: list[store.Queue]


def _list(pool: ConnectionPool, connection_id: str, name: str | None) -> list[store.Queue]:
    with pool.connection() as conn:
        return store.list_queues(conn, connection_id, name)


def _series(pool: ConnectionPool, connection_id: str, name: str, window: dt.timedelta
            ) -> store.Series:
    with pool.connection() as conn:
        return store.queue_series(conn, connection_id, name, window)


class QueuesController(Controller):
    path = "/api/queues"
    tags = ["queues"]
    dependencies = {"principal": requires("read")}

    @get("/", summary="Queues: depth, consumers, throughput, wait p50/p95")
    async def list_queues(self, request: AnyRequest, principal: Caller
                          ) -> QueueList:
        return QueueList(await in_thread(_list, get_pool(request), principal.connection_id,
                                         None))

    @get("/{name:str}", summary="One queue")
    async def get_queue(self, request: AnyRequest, principal: Caller,
                        name: FromPath[str]) -> store.Queue:
        found = await in_thread(_list, get_pool(request), principal.connection_id, name)
        if not found:
            raise ApiError(404, "not_found", f"no queue {name!r} has been seen")
        return found[0]

    @get("/{name:str}/series", summary="Per-bucket finishes, runtime and depth of a queue")
    async def queue_series(self, request: AnyRequest, principal: Caller,
                           name: FromPath[str], window: FromQuery[str] = "1h"
                           ) -> store.Series:
        span = _params.window("window", window, maximum=MAX_WINDOW)
        return await in_thread(_series, get_pool(request), principal.connection_id, name, span)
