"""GET /api/workers and /api/workers/{hostname}."""

from __future__ import annotations

import msgspec
from litestar import Controller, get
from litestar.params import FromPath
from psycopg_pool import ConnectionPool

from sluice.api.auth import requires
from sluice.api.deps import get_pool, in_thread
from sluice.api.errors import ApiError
from sluice.store.reads import workers as store

from ._params import AnyRequest, Caller


class WorkerList(msgspec.Struct):
    items: list[store.Worker]


def _list(pool: ConnectionPool, connection_id: str, hostname: str | None
          ) -> list[store.Worker]:
    with pool.connection() as conn:
        return store.list_workers(conn, connection_id, hostname)


class WorkersController(Controller):
    path = "/api/workers"
    tags = ["workers"]
    dependencies = {"principal": requires("read")}

    @get("/", summary="Workers: status (online/offline/lost), heartbeat, load, throughput")
    async def list_workers(self, request: AnyRequest, principal: Caller
                           ) -> WorkerList:
        return WorkerList(await in_thread(_list, get_pool(request), principal.connection_id,
                                          None))

    @get("/{hostname:str}", summary="One worker")
    async def get_worker(self, request: AnyRequest, principal: Caller,
                         hostname: FromPath[str]) -> store.Worker:
        found = await in_thread(_list, get_pool(request), principal.connection_id, hostname)
        if not found:
            raise ApiError(404, "not_found", f"no worker {hostname!r} has reported")
        return found[0]
