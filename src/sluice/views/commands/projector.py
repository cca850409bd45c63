"""Commands' rows from their events, set-based over a batch. A row is a join of its events:
fields a request sets are kept from the first that has them, the status only moves forward
(requested < running < succeeded | failed), so any order or repetition gives the same row."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, Final

import msgspec
import psycopg

from sluice.domain.commands import Status
from sluice.domain.events import (
    COMMAND_FAILED,
    COMMAND_REQUESTED,
    COMMAND_RUNNING,
    COMMAND_SUCCEEDED,
    Event,
)
from sluice.store.sqlfiles import queries

from ..model import Context

Q = queries(__package__, "projector.sql")
_JSON = msgspec.json.Encoder()
_STATUS_OF: Final = {COMMAND_REQUESTED: Status.REQUESTED, COMMAND_RUNNING: Status.RUNNING,
                     COMMAND_SUCCEEDED: Status.SUCCEEDED, COMMAND_FAILED: Status.FAILED}
RANK: Final = {Status.REQUESTED: 0, Status.RUNNING: 1, Status.SUCCEEDED: 2, Status.FAILED: 2}
# set by the request, or by the outcome: the first value seen is kept
_FIRST: Final = ("action", "job_id", "hostname", "queue", "task_name", "bulk_id", "total",
                 "params", "requested_by", "requested_at", "reason", "new_job_id", "result",
                 "finished_at")


def is_command_event(e: Event) -> bool:
    return e.kind in _STATUS_OF and isinstance(e.extensions.get("command_id"), str)


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat()


def _row(e: Event) -> dict[str, Any]:
    ext = e.extensions
    status = _STATUS_OF[e.kind]
    row: dict[str, Any] = {"command_id": ext["command_id"], "status": status.value,
                           "claims": 0, "job_id": e.job_id}
    if status is Status.REQUESTED:
        row.update(action=ext.get("action"), hostname=e.hostname, queue=e.queue,
                   task_name=e.name, bulk_id=ext.get("bulk_id"), total=ext.get("total"),
                   params=ext.get("params"), requested_by=ext.get("by"),
                   requested_at=_iso(e.timestamp))
    elif status is Status.RUNNING:
        row.update(claims=int(ext.get("claim", 1)), claimed_by=ext.get("claimed_by"),
                   claimed_at=_iso(e.timestamp))
    else:
        row.update(reason=ext.get("reason"), new_job_id=ext.get("new_job_id"),
                   result=ext.get("result"), finished_at=_iso(e.timestamp))
    return row


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """The rules of projector.sql's upsert, for two events of one batch."""
    out = dict(a)
    for name in _FIRST:
        if out.get(name) is None and b.get(name) is not None:
            out[name] = b[name]
    if RANK[Status(b["status"])] > RANK[Status(out["status"])]:
        out["status"] = b["status"]
    if b["claims"] > out["claims"]:
        out.update(claims=b["claims"], claimed_by=b.get("claimed_by"),
                   claimed_at=b.get("claimed_at"))
    return out


def project_commands(conn: psycopg.Connection, connection_id: str, events: Sequence[Event],
                     ctx: Context) -> set[str]:
    rows: dict[str, dict[str, Any]] = {}
    for e in events:
        row = _row(e)
        key = row["command_id"]
        rows[key] = _merge(rows[key], row) if key in rows else row
    if rows:
        conn.execute(Q["upsert_commands"], {
            "connection_id": connection_id,
            "rows": _JSON.encode([rows[k] for k in sorted(rows)]).decode()})
    return set()
