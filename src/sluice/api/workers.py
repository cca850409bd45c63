"""GET /api/workers and /api/workers/{hostname}."""

from __future__ import annotations

import msgspec
from litestar import Controller, get
from litestar.params import FromPath

from sluice.views.workers import reader as store

from . import params as _params
from .auth import requires
from .deps import Db
from .errors import ApiError
from .params import Caller


class WorkerList(msgspec.Struct):
    items: list[store.Worker]


class WorkersController(Controller):
    path = "/api/workers"
    tags = ["workers"]
    dependencies = {"principal": requires("read")}
    guards = [_params.known_query]  # unknown parameters and out-of-range values: 400

    @get("/", summary="Workers: status (online/offline/lost), heartbeat, load, throughput")
    async def list_workers(self, db: Db, principal: Caller) -> WorkerList:
        return WorkerList(await db.run(store.list_workers, principal.connection_id))

    @get("/{hostname:str}", summary="One worker")
    async def get_worker(self, db: Db, principal: Caller,
                         hostname: FromPath[str]) -> store.Worker:
        found = await db.run(store.get_worker, principal.connection_id, hostname)
        if found is None:
            raise ApiError(404, "not_found", f"no worker {hostname!r} has reported")
        return found
