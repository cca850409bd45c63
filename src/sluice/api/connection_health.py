"""GET /api/connection/health: the caller's connection's setup findings (what the recent
traffic says is missing from the Celery configuration, and the setting that fixes it)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from litestar import Controller, get
from litestar.params import QueryParameter

from sluice.service import connection_health as service

from . import params as _params
from .auth import requires
from .deps import Db
from .params import Caller

MAX_SPAN = dt.timedelta(hours=24)


class ConnectionHealthController(Controller):
    path = "/api/connection"
    tags = ["connection"]
    dependencies = {"principal": requires("read")}

    @get("/health", summary="Setup findings: missing Celery settings, silence, clock skew",
         description="Each finding has a stable `code`, a `severity` (error, warning, info), "
                     "a `message`, the `setting` that fixes it and its `evidence` (counts, "
                     "times). `status` is the most severe finding's severity, or ok.")
    async def health(
        self,
        db: Db,
        principal: Caller,
        window: Annotated[str, QueryParameter(
            description="how much recent traffic to look at (1m to 24h)")] = "15m",
        silence: Annotated[str, QueryParameter(
            description="no event for this long is a finding (1m to 24h)")] = "10m",
    ) -> service.Report:
        span = _params.window("window", window, maximum=MAX_SPAN)
        quiet = _params.window("silence", silence, maximum=MAX_SPAN)
        return await db.run(service.report, principal.connection_id,
                            window_s=span.total_seconds(), silence_s=quiet.total_seconds())
