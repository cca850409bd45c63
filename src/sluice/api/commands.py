"""Commands: retry and revoke a job (`operate`), in bulk by ids or by the job list's filter
(with a dry run), read commands (`read`), and an agent executor's claims and reports
(`operate`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Final, TypeVar

import msgspec
from litestar import Controller, Response, get, post
from litestar.params import FromPath, FromQuery, QueryParameter

from sluice.domain.actions import Action, ActionNotAllowed
from sluice.domain.commands import Outcome, Spec, Status, check_signal
from sluice.service import commands as service
from sluice.service.commands import DryRun, Requested
from sluice.service.ingest import AppendResult
from sluice.views.commands import reader
from sluice.views.jobs import reader as jobs
from sluice.views.jobs.cursor import InvalidCursor, decode_cursor

from . import json_body
from . import params as _params
from .auth import Principal, requires
from .deps import Db
from .errors import ApiError
from .params import AnyRequest, Caller

MAX_LIMIT: Final = 500
MAX_CLAIM: Final = 1000
MAX_IDS: Final = service.MAX_BULK
T = TypeVar("T")


def who(principal: Principal) -> str:
    """`requested_by` of a command: the key (later, the user) that asked."""
    return f"key:{principal.key_id}"


async def run_command(db: Db, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """A service call that appends a command, its refusals as the API's errors."""
    try:
        call: Awaitable[T] = db.run(fn, *args, **kwargs)
        return await call
    except ActionNotAllowed as exc:
        raise ApiError(400, "invalid_state", str(exc), field="state") from None
    except service.NoBroker as exc:
        raise ApiError(409, "no_broker", str(exc)) from None
    except service.Invalid as exc:
        raise ApiError(400, "bad_request", exc.reason, field=exc.field) from None
    except service.NotStored as exc:
        raise ApiError(429, "not_stored", f"the command was not stored: {exc}") from None


class RevokeBody(msgspec.Struct, forbid_unknown_fields=True):
    terminate: bool = False
    signal: str = "SIGTERM"


def revoke_params(terminate: bool, signal: str) -> dict[str, Any]:
    name = check_signal(signal)
    if name is None:
        raise json_body.field_error("signal", "signal must be one of SIGTERM, SIGKILL, SIGINT, "
                                              "SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2")
    return {"terminate": terminate, "signal": name}


class BulkBody(msgspec.Struct, forbid_unknown_fields=True):
    action: str
    ids: list[str] | None = None
    # GET /api/jobs's parameters: a string each, or a list for the repeatable ones
    filter: dict[str, str | list[str]] | None = None
    dry_run: bool = False
    terminate: bool = False  # revoke's options
    signal: str = "SIGTERM"


_FILTER_KEYS: Final = frozenset({"state", "queue", "worker", "name", "id", "q", "since",
                                 "until"})


def _one(key: str, value: str | list[str]) -> str | None:
    if isinstance(value, list):
        if len(value) > 1:
            raise json_body.field_error(f"filter.{key}", f"filter.{key} takes one value")
        return value[0] if value else None
    return value or None


def job_filter(raw: dict[str, str | list[str]]) -> jobs.JobFilter:
    unknown = sorted(set(raw) - _FILTER_KEYS)
    if unknown:
        raise json_body.field_error(f"filter.{unknown[0]}",
                                    f"unknown filter {unknown[0]!r}; known: "
                                    f"{', '.join(sorted(_FILTER_KEYS))}")
    try:
        state = raw.get("state")
        return jobs.JobFilter(
            states=_params.states([state] if isinstance(state, str) else state),
            queue=_one("queue", raw["queue"]) if "queue" in raw else None,
            worker=_one("worker", raw["worker"]) if "worker" in raw else None,
            name=_one("name", raw["name"]) if "name" in raw else None,
            id_prefix=_one("id", raw["id"]) if "id" in raw else None,
            q=_one("q", raw["q"]) if "q" in raw else None,
            since=_params.instant("since", _one("since", raw.get("since", ""))),
            until=_params.instant("until", _one("until", raw.get("until", ""))))
    except ApiError as exc:
        exc.field = f"filter.{exc.field}" if exc.field else "filter"
        raise


class JobActionsController(Controller):
    path = "/api/jobs"
    tags = ["commands"]
    dependencies = {"principal": requires("operate")}

    @post("/{job_id:str}/retry", status_code=202,
          summary="Retry a failed or cancelled job: a command, carried out by an executor")
    async def retry(self, db: Db, principal: Caller, job_id: FromPath[str]) -> Requested:
        return await run_command(db, service.request_job_action, principal.connection_id,
                                 Action.RETRY, job_id, by=who(principal))

    @post("/{job_id:str}/revoke", status_code=202,
          summary="Revoke a job (terminate: also kill it if it runs)")
    async def revoke(self, request: AnyRequest, db: Db, principal: Caller,
                     job_id: FromPath[str]) -> Requested:
        body = await json_body.decode(request, RevokeBody, empty=RevokeBody())
        return await run_command(db, service.request_job_action, principal.connection_id,
                                 Action.REVOKE, job_id, by=who(principal),
                                 params=revoke_params(body.terminate, body.signal))

    @post("/actions", status_code=202,
          summary="Retry or revoke many jobs, by ids or by the job list's filter; dry_run "
                  "counts them (200)")
    async def bulk(self, request: AnyRequest, db: Db, principal: Caller
                   ) -> Response[DryRun | Requested]:
        body = await json_body.decode(request, BulkBody)
        try:
            action = Action(body.action)
        except ValueError:
            raise json_body.field_error("action", "action must be retry or revoke") from None
        if (body.ids is None) == (body.filter is None):
            raise json_body.field_error("ids", "give either ids or filter")
        if body.ids is not None and (
                len(body.ids) > MAX_IDS or any(not i or len(i) > 255 for i in body.ids)):
            raise json_body.field_error(
                "ids", f"ids: at most {MAX_IDS}, each 1 to 255 characters")
        f = job_filter(body.filter) if body.filter is not None else None
        if body.dry_run:
            found: DryRun = await db.run(service.dry_run, principal.connection_id, action,
                                         ids=body.ids, f=f)
            return Response(found, status_code=200)
        params = revoke_params(body.terminate, body.signal) if action is Action.REVOKE else None
        described: dict[str, Any] = {"ids": len(body.ids)} if body.ids is not None else {
            "filter": body.filter}
        requested = await run_command(db, service.request_bulk, principal.connection_id,
                                      action, by=who(principal), ids=body.ids, f=f,
                                      params=params, described=described)
        return Response(requested, status_code=202)


class ClaimBody(msgspec.Struct, forbid_unknown_fields=True):
    executor: str
    limit: int = 100


class ClaimAnswer(msgspec.Struct):
    items: list[Spec]


class ReportBody(msgspec.Struct, forbid_unknown_fields=True):
    results: list[Outcome]


class ReportAnswer(msgspec.Struct):
    accepted: int
    duplicates: int


class CommandsController(Controller):
    path = "/api/commands"
    tags = ["commands"]

    @get("/", summary="Commands, newest first, filtered; keyset cursor pagination",
         dependencies={"principal": requires("read")})
    async def list_commands(
        self, db: Db, principal: Caller,
        action: FromQuery[str | None] = None,
        status: Annotated[list[str] | None, QueryParameter(
            description="statuses (repeat or comma-separate)")] = None,
        job_id: FromQuery[str | None] = None,
        bulk_id: Annotated[str | None, QueryParameter(
            description="a bulk action's job commands")] = None,
        since: FromQuery[str | None] = None,
        until: FromQuery[str | None] = None,
        cursor: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT)] = 50,
    ) -> reader.CommandPage:
        statuses = [s.lower() for s in _params.split_values(status)]
        unknown = sorted(set(statuses) - {s.value for s in Status})
        if unknown:
            raise _params.bad("status", f"unknown status(es) {', '.join(unknown)}; known: "
                                        f"{', '.join(s.value for s in Status)}")
        if cursor is not None:
            try:
                decode_cursor(cursor)
            except InvalidCursor as exc:
                raise _params.bad("cursor", str(exc)) from None
        f = reader.CommandFilter(action=action or None, statuses=statuses,
                                 job_id=job_id or None, bulk_id=bulk_id or None,
                                 since=_params.instant("since", since),
                                 until=_params.instant("until", until))
        return await db.run(reader.list_commands, principal.connection_id, f, limit=limit,
                            cursor=cursor or None)

    @get("/{command_id:str}", summary="One command: status, reason, a bulk action's progress",
         dependencies={"principal": requires("read")})
    async def get_command(self, db: Db, principal: Caller, command_id: FromPath[str]
                          ) -> reader.Command:
        found = await db.run(reader.get_command, principal.connection_id, command_id)
        if found is None:
            raise ApiError(404, "not_found", f"no command {command_id!r}")
        return found

    @post("/claim", status_code=200,
          summary="An agent executor takes commands to carry out (sluice agent "
                  "--execute-commands)", dependencies={"principal": requires("operate")})
    async def claim(self, request: AnyRequest, db: Db, principal: Caller) -> ClaimAnswer:
        body = await json_body.decode(request, ClaimBody)
        if not 1 <= body.limit <= MAX_CLAIM:
            raise json_body.field_error("limit", f"limit must be 1 to {MAX_CLAIM}")
        if not body.executor or len(body.executor) > 200:
            raise json_body.field_error("executor", "executor: 1 to 200 characters")
        return ClaimAnswer(await db.run(service.claim, principal.connection_id,
                                        body.executor, body.limit))

    @post("/results", status_code=200, summary="An agent executor reports outcomes",
          dependencies={"principal": requires("operate")})
    async def results(self, request: AnyRequest, db: Db, principal: Caller) -> ReportAnswer:
        body = await json_body.decode(request, ReportBody)
        if len(body.results) > MAX_CLAIM:
            raise json_body.field_error("results", f"at most {MAX_CLAIM} results")
        for o in body.results:
            if o.reason is not None and len(o.reason) > 2000:
                o.reason = o.reason[:2000]
        result: AppendResult = await run_command(db, service.report, principal.connection_id,
                                                 body.results)
        return ReportAnswer(result.accepted, result.duplicates)


ROUTE_HANDLERS = [JobActionsController, CommandsController]
