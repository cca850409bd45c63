"""GET /api/jobs (filtered, keyset-paginated list) and GET /api/jobs/{id} (detail)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.params import FromPath, FromQuery, QueryParameter

from sluice.views.jobs import reader as store
from sluice.views.jobs.cursor import InvalidCursor, decode_cursor

from . import params as _params
from .auth import requires
from .deps import Db
from .params import Caller

MAX_LIMIT = 500


class JobsController(Controller):
    path = "/api/jobs"
    tags = ["jobs"]
    dependencies = {"principal": requires("read")}
    guards = [_params.known_query]  # unknown parameters and out-of-range values: 400

    @get("/", summary="Jobs, newest first, filtered; keyset cursor pagination")
    async def list_jobs(
        self,
        db: Db,
        principal: Caller,
        states: Annotated[list[str] | None, QueryParameter(
            name="state", description="states (repeat or comma-separate)")] = None,
        queue: FromQuery[str | None] = None,
        worker: FromQuery[str | None] = None,
        name: Annotated[str | None, QueryParameter(
            description="task name, case-insensitive substring")] = None,
        id: Annotated[str | None, QueryParameter(description="job id prefix")] = None,
        q: Annotated[str | None, QueryParameter(
            description="free text: in the name or exception, or a job id prefix")] = None,
        since: Annotated[str | None, QueryParameter(
            description="first seen at/after (ISO-8601 or epoch s)")] = None,
        until: Annotated[str | None, QueryParameter(
            description="first seen before (ISO-8601 or epoch s)")] = None,
        cursor: Annotated[str | None, QueryParameter(
            description="next_cursor of the previous page")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT)] = 50,
        facets: Annotated[str | None, QueryParameter(
            description="true: add job counts per state under the other filters")] = None,
    ) -> store.JobPage:
        f = store.JobFilter(
            states=_params.states(states), queue=queue, worker=worker, name=name or None,
            id_prefix=id or None, q=q or None, since=_params.instant("since", since),
            until=_params.instant("until", until),
        )
        if cursor is not None:
            try:
                decode_cursor(cursor)
            except InvalidCursor as exc:
                raise _params.bad("cursor", str(exc)) from None
        return await db.run(store.list_jobs, principal.connection_id, f, limit=limit,
                            cursor=cursor or None, facets=_params.flag("facets", facets))

    @get("/{job_id:str}", summary="One job: history, timing, links; unknown ids say so")
    async def get_job(self, db: Db, principal: Caller, job_id: FromPath[str]
                      ) -> store.JobDetail:
        return await db.run(store.job_detail, principal.connection_id, job_id)
