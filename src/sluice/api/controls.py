"""Worker, queue and task controls (Flower's), each a command carried out by an executor:
pool size and autoscale, queue consumers, task rate and time limits, sending a task by
name, turning events on (`operate`); purging a queue and shutting a worker down (`admin`).
And the read-only worker views of Celery's `inspect` (`read`), cached briefly so that many
viewers cost one broadcast."""

from __future__ import annotations

from typing import Annotated, Any, Final

import msgspec
from litestar import Controller, Response, get, post
from litestar.params import FromPath

from sluice.agent.executor import BrokerDown
from sluice.domain.commands import INSPECT, Control, check_rate
from sluice.service import commands as service
from sluice.service.commands import Requested
from sluice.store import connections
from sluice.store.blocking import in_thread
from sluice.views.queues import reader as queues

from . import json_body
from .auth import requires
from .commands import run_command, who
from .deps import Db
from .errors import ApiError
from .executor import inspect_cache
from .params import AnyRequest, Caller

MAX_POOL_STEP: Final = 64


class PoolBody(msgspec.Struct, forbid_unknown_fields=True):
    action: str  # grow | shrink | autoscale
    n: int = 1
    max: int | None = None
    min: int | None = None


class ConsumerBody(msgspec.Struct, forbid_unknown_fields=True):
    action: str  # add | cancel
    hostname: str | None = None  # None: every worker


class LimitsBody(msgspec.Struct, forbid_unknown_fields=True):
    rate_limit: str | None = None  # Celery's syntax: 10/s, 100/m, 1000/h; "0" lifts it
    soft_time_limit: float | None = None
    time_limit: float | None = None
    hostname: str | None = None


class SendBody(msgspec.Struct, forbid_unknown_fields=True):
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    queue: str | None = None
    routing_key: str | None = None
    countdown: float | None = None
    eta: str | None = None
    expires: str | None = None
    priority: Annotated[int, msgspec.Meta(ge=0, le=255)] | None = None
    headers: dict[str, Any] | None = None


class PurgeBody(msgspec.Struct, forbid_unknown_fields=True):
    confirm: bool = False


class PurgePreview(msgspec.Struct):
    queue: str
    depth: int | None  # as last sampled
    confirm: bool
    detail: str


class InspectAnswer(msgspec.Struct):
    hostname: str
    what: str
    replied: bool
    reply: Any
    age_s: float  # how old the cached answer is


def _name(field: str, value: str) -> str:
    if not value or len(value) > 255 or "\x00" in value:
        raise json_body.field_error(field, f"{field} must be 1 to 255 characters")
    return value


class WorkerControls(Controller):
    path = "/api/workers"
    tags = ["controls"]

    @post("/{hostname:str}/pool", status_code=202, summary="Grow, shrink or autoscale a pool",
          dependencies={"principal": requires("operate")})
    async def pool(self, request: AnyRequest, db: Db, principal: Caller,
                   hostname: FromPath[str]) -> Requested:
        body = await json_body.decode(request, PoolBody)
        params: dict[str, Any]
        if body.action in ("grow", "shrink"):
            if not 1 <= body.n <= MAX_POOL_STEP:
                raise json_body.field_error("n", f"n must be 1 to {MAX_POOL_STEP}")
            control = Control.POOL_GROW if body.action == "grow" else Control.POOL_SHRINK
            params = {"n": body.n}
        elif body.action == "autoscale":
            if body.max is None or body.min is None or not 0 <= body.min <= body.max <= 1024:
                raise json_body.field_error("max", "autoscale needs 0 <= min <= max <= 1024")
            control, params = Control.AUTOSCALE, {"max": body.max, "min": body.min}
        else:
            raise json_body.field_error("action", "action must be grow, shrink or autoscale")
        return await run_command(db, service.request_control, principal.connection_id,
                                 control, by=who(principal),
                                 hostname=_name("hostname", hostname), params=params)

    @post("/{hostname:str}/enable-events", status_code=202,
          summary="Turn task events on in a worker",
          dependencies={"principal": requires("operate")})
    async def enable_events(self, db: Db, principal: Caller, hostname: FromPath[str]
                            ) -> Requested:
        return await run_command(db, service.request_control, principal.connection_id,
                                 Control.ENABLE_EVENTS, by=who(principal),
                                 hostname=_name("hostname", hostname))

    @post("/{hostname:str}/shutdown", status_code=202, summary="Shut a worker down (warm)",
          dependencies={"principal": requires("admin")})
    async def shutdown(self, db: Db, principal: Caller, hostname: FromPath[str]) -> Requested:
        return await run_command(db, service.request_control, principal.connection_id,
                                 Control.SHUTDOWN, by=who(principal),
                                 hostname=_name("hostname", hostname))

    @get("/{hostname:str}/inspect/{what:str}",
         summary="Celery's inspect of one worker: " + ", ".join(INSPECT),
         dependencies={"principal": requires("read")})
    async def inspect(self, request: AnyRequest, db: Db, principal: Caller,
                      hostname: FromPath[str], what: FromPath[str]) -> InspectAnswer:
        if what not in INSPECT:
            raise ApiError(400, "bad_request", f"what must be one of {', '.join(INSPECT)}",
                           field="what")
        broker = await db.run(connections.broker_of, principal.connection_id)
        if broker is None or not broker.broker_url:
            raise ApiError(409, "no_broker", "this connection has no broker the server can "
                                             "reach: set one to inspect its workers")
        cache = inspect_cache(request.app)
        try:
            reply, age = await in_thread(cache.get, principal.connection_id, broker,
                                         hostname, what)
        except BrokerDown as exc:
            raise ApiError(503, "broker_unavailable", str(exc),
                           headers={"Retry-After": "5"}) from None
        return InspectAnswer(hostname, what, reply is not None, reply, round(age, 3))


class QueueControls(Controller):
    path = "/api/queues"
    tags = ["controls"]

    @post("/{name:str}/consumers", status_code=202,
          summary="Make workers start (add) or stop (cancel) consuming a queue",
          dependencies={"principal": requires("operate")})
    async def consumers(self, request: AnyRequest, db: Db, principal: Caller,
                        name: FromPath[str]) -> Requested:
        body = await json_body.decode(request, ConsumerBody)
        if body.action not in ("add", "cancel"):
            raise json_body.field_error("action", "action must be add or cancel")
        control = Control.ADD_CONSUMER if body.action == "add" else Control.CANCEL_CONSUMER
        hostname = _name("hostname", body.hostname) if body.hostname is not None else None
        return await run_command(db, service.request_control, principal.connection_id,
                                 control, by=who(principal), hostname=hostname,
                                 queue=_name("name", name))

    @post("/{name:str}/purge", status_code=202,
          summary="Purge a queue's waiting messages: without confirm, only how many",
          dependencies={"principal": requires("admin")})
    async def purge(self, request: AnyRequest, db: Db, principal: Caller,
                    name: FromPath[str]) -> Response[PurgePreview | Requested]:
        body = await json_body.decode(request, PurgeBody, empty=PurgeBody())
        if not body.confirm:
            found = await db.run(queues.get_queue, principal.connection_id, name)
            depth = found.depth if found is not None else None
            count = "an unknown number of" if depth is None else str(depth)
            return Response(PurgePreview(
                name, depth, False, f"this deletes the {count} message(s) waiting in "
                f"{name!r} (as last sampled): send {{\"confirm\": true}} to purge"),
                status_code=200)
        requested = await run_command(db, service.request_control, principal.connection_id,
                                      Control.PURGE_QUEUE, by=who(principal),
                                      queue=_name("name", name))
        return Response(requested, status_code=202)


class TaskControls(Controller):
    path = "/api/tasks"
    tags = ["controls"]
    dependencies = {"principal": requires("operate")}

    @post("/{name:str}/limits", status_code=202,
          summary="A task's rate limit, or its soft and hard time limits, in workers")
    async def limits(self, request: AnyRequest, db: Db, principal: Caller,
                     name: FromPath[str]) -> Requested:
        body = await json_body.decode(request, LimitsBody)
        times = body.soft_time_limit is not None or body.time_limit is not None
        if (body.rate_limit is not None) == times:
            raise json_body.field_error("rate_limit", "give rate_limit, or soft_time_limit "
                                                      "and/or time_limit (one kind a request)")
        hostname = _name("hostname", body.hostname) if body.hostname is not None else None
        params: dict[str, Any]
        if body.rate_limit is not None:
            if not check_rate(body.rate_limit):
                raise json_body.field_error("rate_limit", "rate_limit looks like 10/s, 100/m "
                                                          "or 1000/h (0 lifts it)")
            control, params = Control.RATE_LIMIT, {"rate_limit": body.rate_limit.strip()}
        else:
            for field in ("soft_time_limit", "time_limit"):
                value = getattr(body, field)
                if value is not None and not 0 < value < 86400 * 7:
                    raise json_body.field_error(field, f"{field} must be > 0 seconds")
            control = Control.TIME_LIMIT
            params = {"soft": body.soft_time_limit, "hard": body.time_limit}
        return await run_command(db, service.request_control, principal.connection_id,
                                 control, by=who(principal), hostname=hostname,
                                 task_name=_name("name", name), params=params)

    @post("/{name:str}/send", status_code=202,
          summary="Send a task by name (args, kwargs, options); its job id is the command's "
                  "new_job_id")
    async def send(self, request: AnyRequest, db: Db, principal: Caller,
                   name: FromPath[str]) -> Requested:
        body = await json_body.decode(request, SendBody, empty=SendBody())
        params = {k: v for k, v in msgspec.structs.asdict(body).items()
                  if v is not None and (v or k in ("args", "kwargs"))}
        return await run_command(db, service.request_control, principal.connection_id,
                                 Control.SEND_TASK, by=who(principal),
                                 task_name=_name("name", name), params=params)


ROUTE_HANDLERS = [WorkerControls, QueueControls, TaskControls]
