"""Reads the dashboard's pages need beside the list endpoints: the overview over a range
(`GET /api/stats/summary?range=1h|24h|7d`), a job's workflow tree
(`GET /api/jobs/{id}/workflow`), a worker's throughput series
(`GET /api/workers/{hostname}/series?window=`) and a queue's wait per bucket
(`GET /api/queues/{name}/wait?window=`)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Final

from litestar import Controller, get
from litestar.params import FromPath, FromQuery, QueryParameter

from sluice.views.jobs import reader as job_reader
from sluice.views.jobs import summary, tree
from sluice.views.queues import wait
from sluice.views.workers import series

from . import params as _params
from .auth import requires
from .deps import Db
from .params import Caller

MAX_WINDOW: Final = dt.timedelta(days=7)


class DashboardReads(Controller):
    path = "/api"
    dependencies = {"principal": requires("read")}

    @get("/stats/summary", tags=["stats"],
         summary="Every state's count, failure rate, finishes per bucket, runtime and wait "
                 "p50/p95, top failing tasks over a range")
    async def stats_summary(
        self, db: Db, principal: Caller,
        range: Annotated[str, QueryParameter(description="1h, 24h or 7d")] = "1h",
    ) -> summary.Summary:
        if range not in summary.RANGES:
            raise _params.bad("range", f"range must be one of {', '.join(summary.RANGES)}")
        return await db.run(summary.summary, principal.connection_id, range)

    @get("/jobs/{job_id:str}/workflow", tags=["jobs"],
         summary="The job's whole workflow (its root and every job below), as a tree")
    async def job_workflow(self, db: Db, principal: Caller, job_id: FromPath[str]
                           ) -> tree.Workflow:
        found = await db.run(job_reader.get_job, principal.connection_id, job_id)
        root = (found.root_id or found.id) if found is not None else job_id
        return await db.run(tree.workflow, principal.connection_id, root)

    @get("/workers/{hostname:str}/series", tags=["workers"],
         summary="A worker's finishes per bucket and their mean runtime")
    async def worker_series(self, db: Db, principal: Caller, hostname: FromPath[str],
                            window: FromQuery[str] = "1h") -> series.WorkerSeries:
        span = _params.window("window", window, maximum=MAX_WINDOW)
        return await db.run(series.worker_series, principal.connection_id, hostname, span)

    @get("/queues/{name:str}/wait", tags=["queues"],
         summary="A queue's wait (sent -> started) p50/p95 per bucket")
    async def queue_wait(self, db: Db, principal: Caller, name: FromPath[str],
                         window: FromQuery[str] = "1h") -> wait.WaitSeries:
        span = _params.window("window", window, maximum=MAX_WINDOW)
        return await db.run(wait.wait_series, principal.connection_id, name, span)


ROUTE_HANDLERS: Final = [DashboardReads]
