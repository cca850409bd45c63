"""GET /api/queues, /api/queues/{name} and /api/queues/{name}/series?window=."""

from __future__ import annotations

import datetime as dt

import msgspec
from litestar import Controller, get
from litestar.params import FromPath, FromQuery

from sluice.views.queues import reader as store

from . import params as _params
from .auth import requires
from .deps import Db
from .errors import ApiError
from .params import Caller

MAX_WINDOW = dt.timedelta(days=7)


class QueueList(msgspec.Struct):
    items: list[store.Queue]


class QueuesController(Controller):
    path = "/api/queues"
    tags = ["queues"]
    dependencies = {"principal": requires("read")}
    guards = [_params.known_query]  # unknown parameters and out-of-range values: 400

    @get("/", summary="Queues: depth, consumers, throughput, wait p50/p95")
    async def list_queues(self, db: Db, principal: Caller) -> QueueList:
        return QueueList(await db.run(store.list_queues, principal.connection_id))

    @get("/{name:str}", summary="One queue")
    async def get_queue(self, db: Db, principal: Caller,
                        name: FromPath[str]) -> store.Queue:
        found = await db.run(store.get_queue, principal.connection_id, name)
        if found is None:
            raise ApiError(404, "not_found", f"no queue {name!r} has been seen")
        return found

    @get("/{name:str}/series", summary="Per-bucket finishes, runtime and depth of a queue")
    async def queue_series(self, db: Db, principal: Caller,
                           name: FromPath[str], window: FromQuery[str] = "1h"
                           ) -> store.Series:
        span = _params.window("window", window, maximum=MAX_WINDOW)
        return await db.run(store.queue_series, principal.connection_id, name, span)
