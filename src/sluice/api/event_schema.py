"""The OpenAPI schema of an ingested event, generated from the msgspec struct
(`sluice.domain.events.Event`): every field, its type, default and whether it is required
come from the struct, so the docs cannot fall behind it; FIELD_DOCS adds what each means
(a test holds it to the struct's fields)."""

from __future__ import annotations

from typing import Any, Final

import msgspec
from litestar.openapi.spec import OpenAPIFormat, OpenAPIType, Schema

from sluice.domain.events import FRAMEWORKS, KINDS, Event, written_by_server

FIELD_DOCS: Final[dict[str, str]] = {
    "kind": "what happened: job.*, worker.*, queue.sampled, source.dropped (the kinds only "
            "the server writes, such as command.*, are refused)",
    "timestamp": "source time, seconds since the epoch (UTC)",
    "dedup_key": "the event's identity; derived from kind, ids, clock and timestamp when "
                 "empty, the same way by the SDK and the agent, so a copy is stored once",
    "framework": "the task framework",
    "connection_id": "if given, must be the API key's connection",
    "job_id": "the task id (Celery's uuid)",
    "hostname": "the worker or producer that reported it (Celery's hostname)",
    "source": "which path reported the event: sdk or agent (not part of its identity)",
    "queue": "the queue the task was sent to, or that a queue sample is about",
    "clock": "Celery's logical clock of the sender",
    "pid": "process id of the sender",
    "utcoffset": "the sender's UTC offset, hours",
    "name": "task name",
    "args": "positional arguments as text (repr), when capture is allowed",
    "kwargs": "keyword arguments as text (repr), when capture is allowed",
    "retries": "how many times the task was retried before this event",
    "eta": "when a delayed task is due (ISO-8601)",
    "expires": "when the task expires (ISO-8601)",
    "parent_id": "the task that sent this one",
    "root_id": "the first task of the workflow",
    "group_id": "the group the task belongs to",
    "routing_key": "the routing key it was published with",
    "exchange": "the exchange it was published to",
    "result": "the return value as text (repr), when capture is allowed",
    "runtime": "seconds the task ran (job.succeeded)",
    "exception": "the exception, as text (job.failed, job.retried)",
    "traceback": "the traceback, as text (job.failed, job.retried)",
    "freq": "seconds between the worker's heartbeats",
    "active": "tasks the worker is running",
    "processed": "tasks the worker has processed since it started",
    "loadavg": "the worker host's load averages (1, 5, 15 minutes)",
    "sw_ident": "the worker software (py-celery)",
    "sw_ver": "its version",
    "sw_sys": "the worker's operating system",
    "depth": "messages waiting in the queue (queue.sampled)",
    "consumers": "consumers of the queue (queue.sampled)",
    "count": "events a sender dropped (source.dropped)",
    "extensions": "framework fields without a unified column (unknown Celery fields land "
                  "here; nothing is dropped silently)",
}

_SCALARS: Final = ("type", "default", "description", "title")


def event_schema() -> Schema:
    """`Event` as a source sends it to POST /api/ingest."""
    (_ref,), components = msgspec.json.schema_components([Event])
    body = components[Event.__name__]
    schema = _convert(body)
    properties = schema.properties or {}
    for name, prop in properties.items():
        if isinstance(prop, Schema):
            prop.description = FIELD_DOCS.get(name)
    # what the validator holds the strings to, beyond their type
    kind, framework, connection = (properties.get(n) for n in ("kind", "framework",
                                                             "connection_id"))
    if isinstance(kind, Schema):
        kind.enum = sorted(k for k in KINDS if not written_by_server(k))
    if isinstance(framework, Schema):
        framework.enum = sorted(FRAMEWORKS)
    if isinstance(connection, Schema):
        connection.format = OpenAPIFormat.UUID
    return schema


def _convert(node: dict[str, Any]) -> Schema:
    """A JSON Schema (as msgspec writes it for plain structs) -> Litestar's OpenAPI Schema.
    `T | None` (anyOf a type and null) becomes `type: [T, "null"]`."""
    unknown = set(node) - {*_SCALARS, "properties", "required", "items", "anyOf"}
    if unknown:
        raise ValueError(f"unexpected JSON Schema keywords {sorted(unknown)}")
    out = Schema(title=node.get("title"), description=node.get("description"),
                 default=node.get("default"), required=node.get("required"))
    if "type" in node:
        out.type = OpenAPIType(node["type"])
    if "properties" in node:
        out.properties = {name: _convert(sub) for name, sub in node["properties"].items()}
    if "items" in node:
        out.items = _convert(node["items"])
    if "anyOf" in node:
        options = [_convert(sub) for sub in node["anyOf"]]
        values = [o for o in options if o.type != OpenAPIType.NULL]
        if len(options) == 2 and len(values) == 1 and isinstance(values[0].type, OpenAPIType):
            out.type = [values[0].type, OpenAPIType.NULL]
            out.items = values[0].items
        else:
            out.any_of = list(options)
    return out
