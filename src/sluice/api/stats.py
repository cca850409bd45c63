"""GET /api/stats/overview: the dashboard's home page figures."""

from __future__ import annotations

import datetime as dt

from litestar import Controller, get
from litestar.params import FromQuery

from sluice.views.jobs import stats as store

from . import params as _params
from .auth import requires
from .deps import Db
from .params import Caller


class StatsController(Controller):
    path = "/api/stats"
    tags = ["stats"]
    dependencies = {"principal": requires("read")}
    guards = [_params.known_query]  # unknown parameters and out-of-range values: 400

    @get("/overview", summary="Counts by state (1 h / 24 h), failure rate, throughput, "
                              "top failing tasks")
    async def overview(self, db: Db, principal: Caller,
                       window: FromQuery[str] = "1h") -> store.Overview:
        span = _params.window("window", window, maximum=dt.timedelta(hours=24))
        minutes = max(1, int(span.total_seconds() // 60))
        return await db.run(store.overview, principal.connection_id, minutes)
