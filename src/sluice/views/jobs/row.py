"""The jobs table's row as the projector writes it: each column once, in COPY order, with its
binary COPY type and where its value comes from. The COPY statement's column list, its types
and every row written follow from COLUMNS.

Reads name their columns in reader.sql: they select by name, so the order here is free.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

import msgspec
from psycopg import sql

from sluice.store.binary_copy import timestamptz

_JSON = msgspec.json.Encoder()
# A row keeps its events as FoldEvents, positional: smaller than keyed maps, and cheaper to
# decode than whole Events. Equal event sets give equal bytes (fold order).
_PACK = msgspec.msgpack.Encoder()


def _json_text(value: Any) -> str:
    # json's binary COPY input is its text, as it is
    return _JSON.encode(value).decode()


class Column(msgspec.Struct, frozen=True):
    name: str
    copy_type: str  # binary COPY type of the value as written
    # attribute path on the projector's folded job (`view` is its JobView); None: the
    # batch's connection id
    source: str | None
    encode: Callable[[Any], Any] | None = None  # the value as the COPY type takes it


# timestamptz columns take binary_copy.timestamptz ints (int8)
COLUMNS: Final = (
    Column("connection_id", "uuid", None),
    Column("job_id", "text", "view.id"),
    Column("state", "text", "view.state"),
    Column("name", "text", "view.name"),
    Column("queue", "text", "view.queue"),
    Column("routing_key", "text", "view.routing_key"),
    Column("worker", "text", "view.worker"),
    Column("retries", "int4", "view.retries"),
    Column("args", "text", "view.args"),
    Column("kwargs", "text", "view.kwargs"),
    Column("result", "text", "view.result"),
    Column("sent_at", "int8", "view.sent_at", timestamptz),
    Column("received_at", "int8", "view.received_at", timestamptz),
    Column("started_at", "int8", "view.started_at", timestamptz),
    Column("finished_at", "int8", "view.finished_at", timestamptz),
    Column("runtime", "float8", "view.runtime"),
    Column("exception", "text", "view.exception"),
    Column("traceback", "text", "view.traceback"),
    Column("eta", "text", "view.eta"),
    Column("expires", "text", "view.expires"),
    Column("parent_id", "text", "view.parent_id"),
    Column("root_id", "text", "view.root_id"),
    Column("group_id", "text", "view.group_id"),
    Column("rejected", "bool", "view.rejected"),
    Column("first_seen_at", "int8", "view.first_event_at", timestamptz),
    Column("last_event_at", "int8", "view.last_event_at", timestamptz),
    Column("events", "int4", "view.events"),
    Column("outcomes", "text", "outcomes", _json_text),
    Column("fold", "bytea", "ordered", _PACK.encode),
    Column("history", "text", "view.history", _json_text),
)

COPY_TYPES: Final = [c.copy_type for c in COLUMNS]


def copy_statement(template: str, columns: Sequence[Column] = COLUMNS) -> sql.Composed:
    """A COPY statement with its {columns} slot filled with the row's column names."""
    names = sql.SQL(", ").join(sql.Identifier(c.name) for c in columns)
    return sql.SQL(template).format(columns=names)


# write_rows(write_row, connection_id, folded jobs): each job's row handed to write_row
RowWriter = Callable[[Callable[[tuple[Any, ...]], object], uuid.UUID, Iterable[Any]], None]


def _check_source(record: type[msgspec.Struct], source: str) -> None:
    owner: Any = record
    for part in source.split("."):
        types = {f.name: f.type for f in msgspec.structs.fields(owner)}
        if part not in types:
            raise TypeError(f"{record.__name__} has no {source!r}")
        owner = types[part]


def row_writer(record: type[msgspec.Struct], columns: Sequence[Column] = COLUMNS
               ) -> RowWriter:
    """The loop that writes folded jobs (`record`s) as rows, in column order.

    Compiled once into the loop one would write by hand, a single tuple expression per row,
    each nested struct fetched once: a loop over the columns, or a call per row, would
    cost more than most of the values fetched. Sources are checked to be fields of
    `record`, so the code holds nothing but field and encoder names.
    """
    namespace: dict[str, Any] = {}
    nested: dict[str, str] = {}  # attribute path -> the local it is fetched into
    values = []
    for i, c in enumerate(columns):
        if c.source is None:
            values.append("connection_id")
            continue
        _check_source(record, c.source)
        owner, _, field = c.source.rpartition(".")
        if owner:
            local = nested.setdefault(owner, f"part_{len(nested)}")
            value = f"{local}.{field}"
        else:
            value = f"job.{field}"
        if c.encode is not None:
            namespace[f"encode_{i}"] = c.encode
            value = f"encode_{i}({value})"
        values.append(value)
    fetches = "".join(f"        {local} = job.{path}\n" for path, local in nested.items())
    source = (
        "def write_rows(write_row, connection_id, jobs):\n"
        "    for job in jobs:\n"
        f"{fetches}"
        f"        write_row(({', '.join(values)},))\n"
    )
    exec(source, namespace)  # holds only field names (checked above) and encoder names
    writer: RowWriter = namespace["write_rows"]
    return writer
