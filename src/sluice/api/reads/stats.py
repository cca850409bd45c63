"""GET /api/stats/overview: the dashboard's home page figures."""

from __future__ import annotations

import datetime as dt

from litestar import Controller, get
from litestar.params import FromQuery
from psycopg_pool import ConnectionPool

from sluice.api.auth import requires
from sluice.api.deps import get_pool, in_thread
from sluice.store.reads import stats as store

from . import _params
from ._params import AnyRequest, Caller


def _overview(pool: ConnectionPool, connection_id: str, minutes: int) -> store.Overview:
    with pool.connection() as conn:
        return store.overview(conn, connection_id, minutes)


class StatsController(Controller):
    path = "/api/stats"
    tags = ["stats"]
    dependencies = {"principal": requires("read")}

    @get("/overview", summary="Counts by state (1 h / 24 h), failure rate, throughput, "
                              "top failing tasks")
    async def overview(self, request: AnyRequest, principal: Caller,
                       window: FromQuery[str] = "1h") -> store.Overview:
        span = _params.window("window", window, maximum=dt.timedelta(hours=24))
        minutes = max(1, int(span.total_seconds() // 60))
        return await in_thread(_overview, get_pool(request), principal.connection_id, minutes)
