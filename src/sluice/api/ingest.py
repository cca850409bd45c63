"""POST /api/ingest: a batch of unified events from the SDK or the agent."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    Example,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
)
from litestar.types import ControllerRouterHandler

from sluice.service import ingest as conductor
from sluice.service.database import Database
from sluice.service.ingest import AppendResult, RejectedItem
from sluice.store.blocking import in_thread

from .auth import Principal, requires
from .body import MAX_EVENTS, MAX_WIRE_BYTES, body_format, decode_batch, is_gzip, read_body
from .deps import Db
from .errors import ApiError, ErrorBody
from .event_schema import event_schema
from .logs import note


class IngestAnswer(msgspec.Struct):
    accepted: int
    duplicates: int
    rejected: list[RejectedItem]


def _process(db: Database, body: bytes, fmt: str, connection_id: str) -> AppendResult:
    # Decoding and validation are CPU work: done in the worker thread, off the event loop,
    # before a pooled connection is taken.
    items = decode_batch(body, fmt, connection_id, time.time())
    return db.call(conductor.append, connection_id, items)


_BATCH_SCHEMA = Schema(
    type=OpenAPIType.OBJECT,
    required=["events"],
    properties={"events": Schema(type=OpenAPIType.ARRAY, items=event_schema(),
                                 max_items=MAX_EVENTS)},
)


@dataclass
class _IngestOperation(Operation):
    """The body is read by hand (incremental gunzip, limits), so describe it here."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            required=True,
            content={
                "application/json": OpenAPIMediaType(schema=_BATCH_SCHEMA),
                "application/msgpack": OpenAPIMediaType(schema=_BATCH_SCHEMA),
            },
            description="Also as `Content-Encoding: gzip`. At most 5,000 events and 5 MiB "
                        "decompressed.",
        )


_ERRORS = {
    400: "unparsable body (JSON, MessagePack or gzip)",
    401: "no or unknown API key",
    403: "revoked key, or a key without the ingest scope",
    413: "more than 5,000 events or 5 MiB decompressed",
    415: "Content-Type not JSON/MessagePack, or Content-Encoding not gzip/identity",
    422: "not {\"events\": [...]}; `field` names what is wrong",
    429: "the connection's daily quota is used up; Retry-After = seconds to UTC midnight",
    503: "the database is unavailable; Retry-After",
}


@post(
    "/api/ingest",
    status_code=202,
    dependencies={"principal": requires("ingest")},
    request_max_body_size=MAX_WIRE_BYTES,
    summary="Ingest a batch of events",
    description=(
        "Body `{\"events\": [event, ...]}` as application/json (optionally "
        "`Content-Encoding: gzip`) or application/msgpack; at most 5,000 events and 5 MiB "
        "decompressed. Each event is stored once (dedup key). Invalid events, events naming "
        "another connection, and events past the daily quota are listed in `rejected` by "
        "index; the rest of the batch is stored."
    ),
    responses={
        code: ResponseSpec(ErrorBody, description=text,
                           examples=[Example(value={"error": "...", "detail": text})])
        for code, text in _ERRORS.items()
    },
    tags=["ingest"],
    operation_class=_IngestOperation,
)
async def ingest(
    request: Request[Any, Any, Any], db: Db, principal: NamedDependency[Principal]
) -> Response[IngestAnswer]:
    fmt = body_format(request.headers.get("content-type"))
    gzip = is_gzip(request.headers.get("content-encoding"))
    body = await read_body(request.stream(), gzip)
    result = await in_thread(_process, db, body, fmt, principal.connection_id)
    note(request, accepted=result.accepted, duplicates=result.duplicates,
         rejected=len(result.rejected))
    if result.exhausted:
        raise ApiError(
            429, "quota_exceeded", "the connection's daily event quota is used up",
            headers={"Retry-After": str(conductor.seconds_to_next_utc_day())},
        )
    answer = IngestAnswer(
        accepted=result.accepted,
        duplicates=result.duplicates,
        rejected=result.rejected,
    )
    return Response(answer, status_code=202)


ROUTE_HANDLERS: list[ControllerRouterHandler] = [ingest]
