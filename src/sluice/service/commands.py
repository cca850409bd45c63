"""Commands, the asking side: check a request (the job's state, a broker or an agent to act
on it), then append `command.requested` to the log's system stream; the commands read model
folds it in the same transaction. The executor (`service.command_executor`, or an agent's)
carries it out and appends the outcome.

Also the connection's broker settings, and an agent executor's claims and reports.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from typing import Any, Final

import msgspec
import psycopg

from sluice.domain import commands as cmd
from sluice.domain.actions import ALLOWED_STATES, Action, ActionNotAllowed, check_action
from sluice.domain.arguments import captured
from sluice.domain.commands import Control, Outcome, Spec, Status
from sluice.domain.events import Event
from sluice.domain.states import State
from sluice.domain.urls import check_url, redact_url
from sluice.domain.validate import check_event
from sluice.store import connections
from sluice.store.connections import Broker
from sluice.store.sqlfiles import queries
from sluice.views.commands import reader
from sluice.views.jobs import reader as jobs

from . import ingest

Q = queries(__package__, "commands.sql")

EXECUTOR_FRESH_S: Final = 60.0  # an agent executor that asked this recently is there
LEASE_S: Final = 120.0  # a claim not reported within this is handed out again
MAX_BULK: Final = 100_000  # jobs in one bulk action
SAMPLE: Final = 20  # jobs a dry run shows
_PAGE: Final = 5_000  # jobs per page when a filter selects a bulk action's jobs


class InvalidUrl(Exception):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field} {reason}")
        self.field = field
        self.reason = reason


class NoBroker(Exception):
    """Nothing can carry out the connection's commands: no broker, no agent executor."""

    def __init__(self) -> None:
        super().__init__(
            "this connection has no broker to act on: set one (sluice connections set ID "
            "--broker URL, or PATCH /api/connection) or run sluice agent --execute-commands")


class NotStored(Exception):
    """The log did not take the command (e.g. the connection's daily quota is used up)."""


class Invalid(Exception):
    """A request that cannot become a command: the field and why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


# the connection's broker -------------------------------------------------------------------

class ConnectionInfo(msgspec.Struct):
    id: str
    name: str
    broker_url: str | None  # without its password
    result_backend_url: str | None
    executor: str | None  # who acts on its commands: "server", "agent" or nobody (null)


def executor_of(broker: Broker, now: dt.datetime | None = None) -> str | None:
    if broker.broker_url:
        return "server"
    now = now or dt.datetime.now(dt.UTC)
    seen = broker.executor_seen_at
    if seen is not None and (now - seen).total_seconds() < EXECUTOR_FRESH_S:
        return "agent"
    return None


def connection_info(conn: psycopg.Connection, connection_id: str) -> ConnectionInfo | None:
    found = connections.get_connection(conn, connection_id)
    broker = connections.broker_of(conn, connection_id)
    if found is None or broker is None:
        return None
    return ConnectionInfo(found.id, found.name, redact_url(broker.broker_url),
                          redact_url(broker.result_backend_url), executor_of(broker))


def set_broker(conn: psycopg.Connection, connection_id: str, /, **changes: str | None
               ) -> ConnectionInfo | None:
    """Change broker_url / result_backend_url (None clears); InvalidUrl names a bad one."""
    for field, value in changes.items():
        if value is not None:
            reason = check_url(value)
            if reason is not None:
                raise InvalidUrl(field, reason)
    if not connections.set_broker(conn, connection_id, **changes):
        return None
    return connection_info(conn, connection_id)


def _require_executor(conn: psycopg.Connection, connection_id: str) -> None:
    broker = connections.broker_of(conn, connection_id)
    if broker is None or executor_of(broker) is None:
        raise NoBroker()


# requests ----------------------------------------------------------------------------------

class Requested(msgspec.Struct):
    command_id: str
    status: str = Status.REQUESTED.value


def _store(conn: psycopg.Connection, connection_id: str, events: list[Event],
           checked: Sequence[Event] | None = None) -> None:
    """Append the command's events; `checked`: those to check (default: all), where the
    others are alike (a bulk action's events differ only in ids the log holds already)."""
    now = time.time()
    for event in events if checked is None else checked:
        rejection = check_event(event, now, from_server=True)
        if rejection is not None:
            field = rejection.field if rejection.field != "extensions" else "params"
            raise Invalid(field or "params", rejection.reason)
    result = ingest.append(conn, connection_id, events)
    if result.rejected or result.exhausted:
        reason = result.rejected[0].reason if result.rejected else ingest.QUOTA_EXCEEDED
        raise NotStored(reason)


def _state(conn: psycopg.Connection, connection_id: str, job_id: str) -> State:
    found = reader.job_states(conn, connection_id, [job_id]).get(job_id)
    return State(found) if found else State.UNKNOWN


def request_job_action(conn: psycopg.Connection, connection_id: str, action: Action,
                       job_id: str, *, by: str, params: dict[str, Any] | None = None
                       ) -> Requested:
    """Retry or revoke one job: ActionNotAllowed for its state, NoBroker without an
    executor."""
    check_action(action, _state(conn, connection_id, job_id))
    _require_executor(conn, connection_id)
    command_id = cmd.new_command_id()
    _store(conn, connection_id, [cmd.requested(command_id, action.value, by=by,
                                               at=time.time(), job_id=job_id,
                                               params=params)])
    return Requested(command_id)


def request_control(conn: psycopg.Connection, connection_id: str, control: Control, *,
                    by: str, hostname: str | None = None, queue: str | None = None,
                    task_name: str | None = None, params: dict[str, Any] | None = None
                    ) -> Requested:
    _require_executor(conn, connection_id)
    command_id = cmd.new_command_id()
    _store(conn, connection_id, [cmd.requested(
        command_id, control.value, by=by, at=time.time(), hostname=hostname, queue=queue,
        task_name=task_name, params=params)])
    return Requested(command_id)


# bulk --------------------------------------------------------------------------------------

class JobRef(msgspec.Struct):
    id: str
    name: str | None
    state: str


class DryRun(msgspec.Struct):
    count: int  # jobs the action would cover
    sample: list[JobRef]
    allowed: int  # of those, in a state the action allows (the others will fail)
    truncated: bool = False  # more than MAX_BULK matched: a real run takes the first ones


def _by_ids(conn: psycopg.Connection, connection_id: str, ids: Sequence[str]
            ) -> list[JobRef]:
    unique = list(dict.fromkeys(ids))
    states = reader.job_states(conn, connection_id, unique)
    return [JobRef(i, None, states.get(i, State.UNKNOWN.value)) for i in unique]


def _by_filter(conn: psycopg.Connection, connection_id: str, f: jobs.JobFilter, limit: int
               ) -> list[JobRef]:
    found: list[JobRef] = []
    cursor: str | None = None
    while len(found) < limit:
        page = jobs.list_jobs(conn, connection_id, f, limit=_PAGE, cursor=cursor)
        found.extend(JobRef(j.id, j.name, j.state) for j in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    return found[:limit]


def select_jobs(conn: psycopg.Connection, connection_id: str, *,
                ids: Sequence[str] | None = None, f: jobs.JobFilter | None = None,
                limit: int = MAX_BULK) -> tuple[list[JobRef], bool]:
    """The jobs a bulk action covers (by ids, or every job the filter lists), and whether
    there were more than `limit`."""
    if ids is not None:
        found = _by_ids(conn, connection_id, ids)
    else:
        found = _by_filter(conn, connection_id, f or jobs.JobFilter(), limit + 1)
    return found[:limit], len(found) > limit


def dry_run(conn: psycopg.Connection, connection_id: str, action: Action, *,
            ids: Sequence[str] | None = None, f: jobs.JobFilter | None = None) -> DryRun:
    found, more = select_jobs(conn, connection_id, ids=ids, f=f)
    allowed = {s.value for s in ALLOWED_STATES[action]}
    return DryRun(count=len(found), sample=found[:SAMPLE], truncated=more,
                  allowed=sum(1 for j in found if j.state in allowed))


def request_bulk(conn: psycopg.Connection, connection_id: str, action: Action, *, by: str,
                 ids: Sequence[str] | None = None, f: jobs.JobFilter | None = None,
                 params: dict[str, Any] | None = None,
                 described: dict[str, Any] | None = None) -> Requested:
    """One bulk command and one command per job, in one append. A job whose state does not
    allow the action gets its failed outcome at once; the executor does the rest, in pages,
    so progress shows as it goes."""
    _require_executor(conn, connection_id)
    found, _ = select_jobs(conn, connection_id, ids=ids, f=f)
    now = time.time()
    bulk_id = cmd.new_command_id()
    events = [cmd.requested(bulk_id, action.value, by=by, at=now, total=len(found),
                            params={**(params or {}), **(described or {})})]
    failed = 0
    samples: dict[str, Event] = {}  # one event of each kind, checked for all
    for job in found:
        command_id = cmd.new_command_id()
        events.append(cmd.requested(command_id, action.value, by=by, at=now, job_id=job.id,
                                    params=params, bulk_id=bulk_id))
        samples.setdefault(events[-1].kind, events[-1])
        try:
            check_action(action, State(job.state))
        except ActionNotAllowed as exc:
            failed += 1
            events.append(cmd.finished(Outcome(command_id=command_id, ok=False,
                                               reason=str(exc)),
                                       at=now, job_id=job.id, bulk_id=bulk_id))
        samples.setdefault(events[-1].kind, events[-1])
    if failed == len(found):  # nothing left to do: the bulk is over as it starts
        events.append(cmd.finished(Outcome(command_id=bulk_id, ok=failed == 0,
                                           reason=cmd.bulk_reason(failed, len(found))),
                                   at=now))
    with conn.transaction():
        _store(conn, connection_id, events, [events[0], *samples.values()])
    return Requested(bulk_id)


# executing ---------------------------------------------------------------------------------

def specs_of(rows: Sequence[Sequence[Any]]) -> list[Spec]:
    """Specs from command rows joined with their jobs (commands.sql's spec columns)."""
    specs = []
    for (command_id, action, job_id, hostname, queue, task_name, params, bulk_id,
         job_name, job_queue, routing_key, args, kwargs) in rows:
        spec = Spec(command_id=command_id, action=action or "", job_id=job_id,
                    hostname=hostname, queue=queue, task_name=task_name,
                    params=msgspec.json.decode(params) if params else {}, bulk_id=bulk_id)
        if action == Action.RETRY:
            spec.task_name, spec.queue, spec.routing_key = job_name, job_queue, routing_key
            known = captured(args, kwargs)
            if isinstance(known, str):
                spec.args_unknown = known
            else:
                spec.args, spec.kwargs = known
        if action in (Action.RETRY, Control.SEND_TASK):
            spec.new_job_id = cmd.new_job_id(command_id)
        specs.append(spec)
    return specs


def lock_requested(conn: psycopg.Connection, connection_id: str, command_ids: Sequence[str],
                   *, skip_locked: bool = False) -> list[Spec]:
    """The specs of those commands still `requested`, their rows locked to commit (an agent's
    claim skips them meanwhile)."""
    statement = Q["lock_requested_skip"] if skip_locked else Q["lock_requested"]
    return specs_of(conn.execute(statement, {"connection_id": connection_id,
                                             "ids": list(command_ids)}).fetchall())


def outcome_events(conn: psycopg.Connection, connection_id: str, specs: Sequence[Spec],
                   outcomes: Sequence[Outcome], now: float | None = None) -> list[Event]:
    """The outcome events of these commands, and what their bulk actions show: running once
    their first job is done, their own outcome with their last one."""
    now = time.time() if now is None else now
    events = [cmd.finished(o, at=now, job_id=s.job_id, bulk_id=s.bulk_id)
              for s, o in zip(specs, outcomes, strict=True)]
    finishing: dict[str, list[bool]] = {}
    for s, o in zip(specs, outcomes, strict=True):
        if s.bulk_id:
            finishing.setdefault(s.bulk_id, []).append(o.ok)
    for bulk_id, oks in finishing.items():
        row = conn.execute(Q["bulk_state"], {"connection_id": connection_id,
                                             "bulk_id": bulk_id}).fetchone()
        if row is None:
            continue
        status, total, succeeded, failed = row
        if status in (Status.SUCCEEDED, Status.FAILED):
            continue
        failed += oks.count(False)
        done = succeeded + failed + oks.count(True)
        if done >= total:
            events.append(cmd.finished(Outcome(command_id=bulk_id, ok=failed == 0,
                                               reason=cmd.bulk_reason(failed, total)),
                                       at=now))
        elif status == Status.REQUESTED:
            events.append(cmd.running(bulk_id, claimed_by="executor", claim=1, at=now))
    return events


def record_outcomes(conn: psycopg.Connection, connection_id: str, specs: Sequence[Spec],
                    outcomes: Sequence[Outcome]) -> ingest.AppendResult:
    return ingest.append(conn, connection_id,
                         outcome_events(conn, connection_id, specs, outcomes))


# an agent executor -------------------------------------------------------------------------

def claim(conn: psycopg.Connection, connection_id: str, executor: str, limit: int
          ) -> list[Spec]:
    """Hand an agent executor up to `limit` commands to carry out: those requested, and
    those whose claim was not reported within LEASE_S. Each is marked running (a claim
    event), so no other executor gets it meanwhile."""
    connections.executor_seen(conn, connection_id)
    with conn.transaction():
        rows = conn.execute(Q["claim"], {"connection_id": connection_id, "limit": limit,
                                         "lease_s": LEASE_S}).fetchall()
        if not rows:
            return []
        claims = {r[0]: int(r[-1]) + 1 for r in rows}
        specs = specs_of([r[:-1] for r in rows])
        now = time.time()
        ingest.append(conn, connection_id, [
            cmd.running(s.command_id, claimed_by=executor, claim=claims[s.command_id], at=now,
                        job_id=s.job_id) for s in specs])
    return specs


def report(conn: psycopg.Connection, connection_id: str, outcomes: Sequence[Outcome]
           ) -> ingest.AppendResult:
    """An agent executor's outcomes. Only for commands that exist and are not finished: a
    command's outcome is stored once, whoever reports it (its dedup key)."""
    ids = [o.command_id for o in outcomes]
    with conn.transaction():
        rows = conn.execute(Q["lock_open"], {"connection_id": connection_id,
                                             "ids": ids}).fetchall()
        specs = {s.command_id: s for s in specs_of(rows)}
        known = [o for o in outcomes if o.command_id in specs]
        return record_outcomes(conn, connection_id, [specs[o.command_id] for o in known],
                               known)
