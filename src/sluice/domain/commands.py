"""Commands: what an operator asks Sluice to do on a broker (retry, revoke, worker, queue and
task controls), as events in the log's system stream, and what an executor needs to carry
one out and reports back.

A command's events (all `command.*`, written by the server only):
- `command.requested`: who asked, when, what (job / worker / queue / task) and how;
- `command.running`: an agent executor claimed it (the server's executor acts inside one
  transaction, so its commands go straight to an outcome);
- `command.succeeded` / `command.failed`: the outcome, with the reason. Both carry the same
  dedup key, so the log holds at most one outcome per command whoever reports it;
- `command.resent`: revokes sent again to a worker that came (back) online.
"""

from __future__ import annotations

import re
import uuid
from enum import StrEnum
from typing import Any, Final

import msgspec

from .actions import Action
from .events import (
    COMMAND_FAILED,
    COMMAND_REQUESTED,
    COMMAND_RESENT,
    COMMAND_RUNNING,
    COMMAND_SUCCEEDED,
    Event,
)


class Status(StrEnum):
    REQUESTED = "requested"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


TERMINAL: Final = frozenset({Status.SUCCEEDED, Status.FAILED})


class Control(StrEnum):
    """Worker, queue and task controls (Flower's), each a command like retry and revoke."""

    POOL_GROW = "pool_grow"
    POOL_SHRINK = "pool_shrink"
    AUTOSCALE = "autoscale"
    ADD_CONSUMER = "add_consumer"
    CANCEL_CONSUMER = "cancel_consumer"
    RATE_LIMIT = "rate_limit"
    TIME_LIMIT = "time_limit"
    SEND_TASK = "send_task"
    ENABLE_EVENTS = "enable_events"
    PURGE_QUEUE = "purge_queue"
    SHUTDOWN = "shutdown"


ACTIONS: Final = frozenset({*(a.value for a in Action), *(c.value for c in Control)})
# what `GET /api/workers/{hostname}/inspect/{what}` may ask (Celery's inspect methods)
INSPECT: Final = ("registered", "reserved", "scheduled", "revoked", "active_queues", "stats",
                  "conf", "active")
SIGNALS: Final = ("SIGTERM", "SIGKILL", "SIGINT", "SIGQUIT", "SIGHUP", "SIGUSR1", "SIGUSR2")
_RATE_RE: Final = re.compile(r"^\d+(\.\d+)?(/[smh])?$")
# The id a retry publishes is derived from its command: a re-run after a crash between the
# publish and the commit publishes the same id again, which folds into the same job.
RETRY_NAMESPACE: Final = uuid.UUID("8c4b9a1e-3f7d-5e2a-9b6c-0d1e2f3a4b5c")


def new_job_id(command_id: str) -> str:
    """The task id of the job a command creates (a retry, a sent task)."""
    return str(uuid.uuid5(RETRY_NAMESPACE, command_id))


def new_command_id() -> str:
    return str(uuid.uuid4())


def check_signal(value: str) -> str | None:
    """The signal name Celery gets, or None when it is not one a revoke may send."""
    name = value.strip().upper()
    name = name if name.startswith("SIG") else "SIG" + name
    return name if name in SIGNALS else None


def check_rate(value: str) -> bool:
    """Celery's rate limit syntax: `10`, `10/s`, `100/m`, `1000/h` (0 lifts it)."""
    return bool(_RATE_RE.match(value.strip()))


class Spec(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What an executor (the server's, or an agent's next to the broker) needs to carry out
    one command."""

    command_id: str
    action: str
    job_id: str | None = None
    hostname: str | None = None  # a worker control's worker (None: every worker)
    queue: str | None = None
    task_name: str | None = None  # the task a retry republishes, a limit or a send names
    params: dict[str, Any] = {}
    # a retry's original task as Sluice saw it; arguments when captured complete
    routing_key: str | None = None
    exchange: str | None = None
    args: list[Any] | None = None
    kwargs: dict[str, Any] | None = None
    args_unknown: str | None = None  # why captured arguments cannot be used, if they cannot
    new_job_id: str | None = None
    bulk_id: str | None = None


class Outcome(msgspec.Struct, kw_only=True, omit_defaults=True):
    command_id: str
    ok: bool
    reason: str | None = None
    new_job_id: str | None = None
    result: Any = None


def _key(command_id: str, part: str) -> str:
    return f"cmd.{command_id}.{part}"


def outcome_key(command_id: str) -> str:
    """The one dedup key of a command's outcome, succeeded or failed."""
    return _key(command_id, "end")


def requested(command_id: str, action: str, *, by: str, at: float,
              job_id: str | None = None, hostname: str | None = None,
              queue: str | None = None, task_name: str | None = None,
              params: dict[str, Any] | None = None, bulk_id: str | None = None,
              total: int | None = None) -> Event:
    ext: dict[str, Any] = {"command_id": command_id, "action": action, "by": by}
    if params:
        ext["params"] = params
    if bulk_id is not None:
        ext["bulk_id"] = bulk_id
    if total is not None:
        ext["total"] = total
    return Event(kind=COMMAND_REQUESTED, timestamp=at, dedup_key=_key(command_id, "req"),
                 job_id=job_id, hostname=hostname, queue=queue, name=task_name,
                 extensions=ext)


def running(command_id: str, *, claimed_by: str, claim: int, at: float,
            job_id: str | None = None) -> Event:
    return Event(kind=COMMAND_RUNNING, timestamp=at, dedup_key=_key(command_id, f"run{claim}"),
                 job_id=job_id, extensions={"command_id": command_id,
                                            "claimed_by": claimed_by[:200], "claim": claim})


def finished(outcome: Outcome, *, at: float, job_id: str | None = None,
             bulk_id: str | None = None) -> Event:
    ext: dict[str, Any] = {"command_id": outcome.command_id}
    for name in ("reason", "new_job_id", "result"):
        value = getattr(outcome, name)
        if value is not None:
            ext[name] = value
    if bulk_id is not None:
        ext["bulk_id"] = bulk_id
    return Event(kind=COMMAND_SUCCEEDED if outcome.ok else COMMAND_FAILED, timestamp=at,
                 dedup_key=outcome_key(outcome.command_id), job_id=job_id, extensions=ext)


def resent(hostname: str, command_ids: list[str], *, at: float, answers: str) -> Event:
    """Revokes sent again to `hostname`; `answers`: a key of the event that prompted it (a
    re-run decides the same event, a duplicate)."""
    return Event(kind=COMMAND_RESENT, timestamp=at, dedup_key=f"resent.{answers}"[:128],
                 hostname=hostname, extensions={"command_ids": command_ids})


def bulk_reason(failed: int, total: int) -> str | None:
    return None if failed == 0 else f"{failed} of {total} jobs failed"
