"""GET /api/jobs (filtered, keyset-paginated list) and GET /api/jobs/{id} (detail)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.params import FromPath, FromQuery, QueryParameter
from psycopg_pool import ConnectionPool

from sluice.api.auth import requires
from sluice.api.deps import get_pool, in_thread
from sluice.store.reads import jobs as store

from . import _params
from ._params import AnyRequest, Caller

MAX_LIMIT = 500


def _list(pool: ConnectionPool, connection_id: str, f: store.JobFilter, limit: int,
          cursor: str | None, facets: bool) -> store.JobPage:
    with pool.connection() as conn:
        return store.list_jobs(conn, connection_id, f, limit=limit, cursor=cursor,
                               facets=facets)


def _detail(pool: ConnectionPool, connection_id: str, job_id: str) -> store.JobDetail:
    with pool.connection() as conn:
        return store.get_job(conn, connection_id, job_id) or store.unknown_job(job_id)


class JobsController(Controller):
    path = "/api/jobs"
    tags = ["jobs"]
    dependencies = {"principal": requires("read")}

    @get("/", summary="Jobs, newest first, filtered; keyset cursor pagination")
    async def list_jobs(
        self,
        request: AnyRequest,
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
                store.decode_cursor(cursor)
            except store.InvalidCursor as exc:
                raise _params.bad("cursor", str(exc)) from None
        return await in_thread(_list, get_pool(request), principal.connection_id, f, limit,
                               cursor or None, _params.flag("facets", facets))

    @get("/{job_id:str}", summary="One job: history, timing, links; unknown ids say so")
    async def get_job(self, request: AnyRequest,
                      principal: Caller, job_id: FromPath[str]
                      ) -> store.JobDetail:
        return await in_thread(_detail, get_pool(request), principal.connection_id, job_id)
