"""Command reads: one command (a bulk action with its progress), the filtered list, a job's
command entries and the retry links between jobs."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import msgspec
import psycopg

from sluice.domain.commands import TERMINAL, Status, bulk_reason
from sluice.store.sqlfiles import queries

from .._sql import utc, with_filters
from ..jobs.cursor import decode_cursor, encode_cursor

Q = queries(__package__, "reader.sql")
_FRAGMENTS = {name: Q[name] for name in Q if name.startswith("f_")}


class Progress(msgspec.Struct):
    """A bulk action's jobs, by where they are."""

    total: int
    done: int
    succeeded: int
    failed: int
    running: int


class Command(msgspec.Struct, kw_only=True):
    id: str
    action: str | None
    job_id: str | None
    status: str
    reason: str | None
    new_job_id: str | None
    requested_by: str | None
    requested_at: dt.datetime | None
    finished_at: dt.datetime | None
    hostname: str | None = None
    queue: str | None = None
    task_name: str | None = None
    params: dict[str, Any] | None = None
    bulk_id: str | None = None
    claimed_by: str | None = None
    result: Any = None
    progress: Progress | None = None  # a bulk action's


class CommandPage(msgspec.Struct):
    items: list[Command]
    next_cursor: str | None


class CommandFilter(msgspec.Struct, kw_only=True):
    action: str | None = None
    statuses: list[str] = []
    job_id: str | None = None  # commands about it, or the retry that created it
    bulk_id: str | None = None  # a bulk action's job commands (else: top-level commands)
    since: dt.datetime | None = None
    until: dt.datetime | None = None


_TOTAL = 8  # the position of `total` in a command row


def _command(row: Sequence[Any]) -> Command:
    (cid, action, status, job_id, hostname, queue, task_name, bulk_id, _total, params,
     by, requested_at, claimed_by, reason, new_job_id, result, finished_at) = row
    return Command(id=cid, action=action, job_id=job_id, status=status, reason=reason,
                   new_job_id=new_job_id, requested_by=by, requested_at=utc(requested_at),
                   finished_at=utc(finished_at), hostname=hostname, queue=queue,
                   task_name=task_name, params=msgspec.json.decode(params) if params else None,
                   bulk_id=bulk_id, claimed_by=claimed_by,
                   result=msgspec.json.decode(result) if result else None)


def progress(conn: psycopg.Connection, connection_id: str, bulk_id: str, total: int
             ) -> Progress:
    counts: dict[str, int] = dict(conn.execute(Q["bulk_progress"],
                               {"connection_id": connection_id, "bulk_id": bulk_id}).fetchall())
    succeeded, failed = counts.get(Status.SUCCEEDED, 0), counts.get(Status.FAILED, 0)
    return Progress(total=total, done=succeeded + failed, succeeded=succeeded, failed=failed,
                    running=counts.get(Status.RUNNING, 0))


def _with_progress(conn: psycopg.Connection, connection_id: str, row: Sequence[Any]
                   ) -> Command:
    command = _command(row)
    total = row[_TOTAL]
    if total is None:
        return command
    command.progress = p = progress(conn, connection_id, command.id, int(total))
    if command.status not in TERMINAL:
        # until its outcome is in the log, a bulk action's status is its jobs'
        if p.done == p.total:
            command.status = Status.FAILED if p.failed else Status.SUCCEEDED
            command.reason = bulk_reason(p.failed, p.total)
        elif p.done or p.running:
            command.status = Status.RUNNING
    return command


def get_command(conn: psycopg.Connection, connection_id: str, command_id: str
                ) -> Command | None:
    row = conn.execute(Q["get_command"], {"connection_id": connection_id,
                                          "command_id": command_id}).fetchone()
    return None if row is None else _with_progress(conn, connection_id, row)


def list_commands(conn: psycopg.Connection, connection_id: str, f: CommandFilter, *,
                  limit: int = 50, cursor: str | None = None) -> CommandPage:
    """Newest first; the cursor (from the previous page) continues strictly after it."""
    names = ["f_bulk" if f.bulk_id else "f_top"]
    params: dict[str, Any] = {"connection_id": connection_id, "limit": limit + 1,
                              "bulk_id": f.bulk_id}
    for name, value, key in (("f_action", f.action, "action"), ("f_job", f.job_id, "job_id"),
                             ("f_since", f.since, "since"), ("f_until", f.until, "until")):
        if value is not None:
            names.append(name)
            params[key] = value
    if f.statuses:
        names.append("f_status")
        params["statuses"] = sorted(set(f.statuses))
    if cursor is not None:
        names.append("f_cursor")
        params["cursor_at"], params["cursor_id"] = decode_cursor(cursor)
    rows = conn.execute(with_filters(Q["list_commands"], _FRAGMENTS, names), params).fetchall()
    items = [_with_progress(conn, connection_id, r) for r in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor(last[11], last[0])
    return CommandPage(items, next_cursor)


def job_commands(conn: psycopg.Connection, connection_id: str, job_id: str) -> list[Command]:
    """The commands about a job (and the retry that created it), oldest first."""
    return [_command(r) for r in conn.execute(
        Q["job_commands"], {"connection_id": connection_id, "job_id": job_id})]


class Links(msgspec.Struct):
    retried_from: str | None = None
    retried_as: str | None = None


def job_links(conn: psycopg.Connection, connection_id: str, job_ids: Sequence[str]
              ) -> dict[str, Links]:
    """The retry links of these jobs (only the linked ones are in the answer)."""
    if not job_ids:
        return {}
    params = {"connection_id": connection_id, "job_ids": list(job_ids)}
    links: dict[str, Links] = {}
    for job_id, new in conn.execute(Q["retried_as"], params):
        links.setdefault(job_id, Links()).retried_as = new
    for job_id, old in conn.execute(Q["retried_from"], params):
        links.setdefault(job_id, Links()).retried_from = old
    return links


def job_states(conn: psycopg.Connection, connection_id: str, job_ids: Sequence[str]
               ) -> dict[str, str]:
    """The state of each of these jobs that Sluice has seen."""
    if not job_ids:
        return {}
    return dict(conn.execute(Q["job_states"], {"connection_id": connection_id,
                                               "job_ids": list(job_ids)}).fetchall())
