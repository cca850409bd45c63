"""The job fold: the read model of a job as a function of the *set* of its events.

Events are put in a total order that survives clock skew between producer and worker:
(attempt, phase, source timestamp, clock, dedup key). The attempt of a sent/received event
is its `retries`; a worker's later events of a job (started, succeeded, ...) belong to the
attempt of the latest `received` by the same host, whose clock they share. Within an
attempt the phase (sent < received < started < outcome) decides, so a producer clock
minutes ahead of the worker cannot reorder them. The job is the last state in that order.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from operator import attrgetter
from typing import Final, TypeVar

import msgspec

from . import events as ev
from .events import Event
from .states import TERMINAL_STATES, State

_PHASE: Final[dict[str, int]] = {
    ev.JOB_SENT: 0,
    ev.JOB_RECEIVED: 1,
    ev.JOB_STARTED: 2,
    ev.JOB_INTERRUPTED: 3,
    ev.JOB_RETRIED: 4,
    ev.JOB_SUCCEEDED: 4,
    ev.JOB_FAILED: 4,
    ev.JOB_REJECTED: 5,  # Celery sends task-failed, then task-rejected
    ev.JOB_REVOKED: 6,  # a revoke ends the attempt, whatever else was reported
}
_OUTCOME_STATE: Final[dict[str, State]] = {
    ev.JOB_STARTED: State.ACTIVE,
    ev.JOB_INTERRUPTED: State.RETRYING,
    ev.JOB_RETRIED: State.RETRYING,
    ev.JOB_SUCCEEDED: State.COMPLETED,
    ev.JOB_FAILED: State.FAILED,
    ev.JOB_REJECTED: State.FAILED,
    ev.JOB_REVOKED: State.CANCELLED,
}
_FAILURE_KINDS: Final = frozenset({ev.JOB_FAILED, ev.JOB_RETRIED, ev.JOB_INTERRUPTED,
                                   ev.JOB_REJECTED})
_FAILING_VALUES: Final = frozenset({State.FAILED.value, State.RETRYING.value})
# An ETA this far past the event's own time means the job waits for it (countdown/retry delay).
_ETA_SLACK_S: Final = 0.5


class FoldEvent(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """A job event as the fold reads it, and as a job's row keeps its events for later
    merges (the log keeps them whole). Positional, for compact rows: add fields at the end
    only, with defaults, and never reorder."""

    kind: str
    timestamp: float
    dedup_key: str
    hostname: str | None = None
    clock: int | None = None
    retries: int | None = None
    name: str | None = None
    queue: str | None = None
    routing_key: str | None = None
    args: str | None = None
    kwargs: str | None = None
    root_id: str | None = None
    parent_id: str | None = None
    group_id: str | None = None
    eta: str | None = None
    expires: str | None = None
    result: str | None = None
    runtime: float | None = None
    exception: str | None = None
    traceback: str | None = None


# The fold reads the same fields of an Event and of a FoldEvent.
FoldInput = Event | FoldEvent


# An Event's values of FoldEvent's fields, in order: ~5x cheaper than msgspec.convert with
# from_attributes, which the ingest path paid once per event (~2% of it).
_FOLD_VALUES: Final = attrgetter(*FoldEvent.__struct_fields__)


def fold_event(e: FoldInput) -> FoldEvent:
    """What the fold reads of an event."""
    if isinstance(e, FoldEvent):
        return e
    return FoldEvent(*_FOLD_VALUES(e))


class StoredTransition(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One entry of a job's history as the fold makes it and the job's row keeps it: JSON
    [state, at (epoch seconds), kind, hostname, attempt], compact, and read by position
    (the job_transitions view), so never reorder it. The API answers another shape, keyed
    with an ISO time: the jobs reader's `Transition`, read from the row through that view.
    """

    state: str
    at: float
    kind: str
    hostname: str | None
    attempt: int


class Outcome(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One finished attempt, for per-minute rollups."""

    minute: int  # epoch seconds, floored to the minute
    outcome: str
    runtime: float | None


class JobView(msgspec.Struct, kw_only=True, gc=False):
    id: str
    state: str = State.UNKNOWN.value
    name: str | None = None
    queue: str | None = None
    routing_key: str | None = None
    worker: str | None = None
    retries: int = 0
    args: str | None = None
    kwargs: str | None = None
    result: str | None = None
    sent_at: float | None = None
    received_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    runtime: float | None = None
    exception: str | None = None
    traceback: str | None = None
    eta: str | None = None
    expires: str | None = None
    parent_id: str | None = None
    root_id: str | None = None
    group_id: str | None = None
    rejected: bool = False
    first_event_at: float | None = None
    last_event_at: float | None = None
    events: int = 0
    history: list[StoredTransition] = []
    outcomes: list[Outcome] = []


def _eta_seconds(eta: str | None) -> float | None:
    if not eta:
        return None
    try:
        parsed = dt.datetime.fromisoformat(eta)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


def _waiting_state(event: FoldInput, attempt: int) -> State:
    eta = _eta_seconds(event.eta)
    if eta is not None and eta > event.timestamp + _ETA_SLACK_S:
        return State.RETRYING if attempt > 0 else State.SCHEDULED
    return State.QUEUED


def _latest_before(
    anchors: dict[str | None, list[tuple[float, int, int]]], e: FoldInput
) -> int | None:
    mine = (e.timestamp, e.clock or 0)
    before = [a for a in anchors.get(e.hostname, ()) if (a[0], a[1]) <= mine]
    return max(before)[2] if before else None


def _attempts(events: Sequence[FoldInput]) -> dict[str, int]:
    """Attempt number of every event, by dedup key.

    A worker publishes a retry's next message before it reports task-retried, and may
    receive it first, so an outcome belongs to the latest *start* on its host, and a start
    to the latest *receipt* on its host (same host, same clock).
    """
    for e in events:  # a loop, not any(): most jobs are never retried, and this is per fold
        if e.retries or e.kind == ev.JOB_RETRIED:
            break
    else:
        return dict.fromkeys([e.dedup_key for e in events], 0)  # never retried: all attempt 0
    attempt: dict[str, int] = {}
    received: dict[str | None, list[tuple[float, int, int]]] = {}
    for e in events:
        if e.kind in (ev.JOB_SENT, ev.JOB_RECEIVED):
            attempt[e.dedup_key] = e.retries or 0
            if e.kind == ev.JOB_RECEIVED:
                received.setdefault(e.hostname, []).append(
                    (e.timestamp, e.clock or 0, e.retries or 0)
                )
    started: dict[str | None, list[tuple[float, int, int]]] = {}
    for e in events:
        if e.kind == ev.JOB_STARTED:
            found = _latest_before(received, e)
            attempt[e.dedup_key] = found if found is not None else _retries_before(events, e)
            started.setdefault(e.hostname, []).append(
                (e.timestamp, e.clock or 0, attempt[e.dedup_key])
            )
    for e in events:
        if e.dedup_key in attempt:
            continue
        found = _latest_before(started, e)
        if found is None:
            found = _latest_before(received, e)
        attempt[e.dedup_key] = found if found is not None else _retries_before(events, e)
    return attempt


def _retries_before(events: Sequence[FoldInput], e: FoldInput) -> int:
    """With no receipt seen from the event's host: how many times that host retried before."""
    mine = (e.timestamp, e.clock or 0)
    return sum(
        1
        for o in events
        if o.kind == ev.JOB_RETRIED and o.hostname == e.hostname
        and (o.timestamp, o.clock or 0) < mine
    )


_F = TypeVar("_F", bound=FoldInput)


def order(events: Iterable[_F]) -> list[tuple[int, _F]]:
    """The job's distinct events in fold order, each with its attempt number."""
    items = list({e.dedup_key: e for e in events if e.kind in _PHASE}.values())
    if len(items) == 1:  # a new job's first event (half of all folds): _attempts' answer
        e = items[0]
        return [((e.retries or 0) if e.kind in _WAITING_KINDS else 0, e)]
    attempts = _attempts(items)  # order-independent: it only takes maxima and counts
    ranked = sorted(
        items,
        key=lambda e: (attempts[e.dedup_key], _PHASE[e.kind], e.timestamp, e.clock or 0,
                       e.dedup_key),
    )
    return [(attempts[e.dedup_key], e) for e in ranked]


_OUTCOME_VALUE: Final[dict[str, str]] = {k: s.value for k, s in _OUTCOME_STATE.items()}
_TERMINAL_VALUES: Final = frozenset(s.value for s in TERMINAL_STATES)
_WAITING_KINDS: Final = frozenset({ev.JOB_SENT, ev.JOB_RECEIVED})
_QUEUED: Final = State.QUEUED.value
# job fields any event may carry; the latest in fold order that has one sets it
_LATEST_WINS: Final = ("name", "args", "kwargs", "eta", "expires", "root_id", "group_id",
                       "routing_key")


def _state_of(event: FoldInput, attempt: int) -> str:
    if event.kind in _WAITING_KINDS:
        return _QUEUED if event.eta is None else _waiting_state(event, attempt).value
    return _OUTCOME_VALUE[event.kind]


def _apply(view: JobView, attempt: int, e: FoldInput, state: str) -> None:
    view.state = state
    view.history.append(StoredTransition(state, e.timestamp, e.kind, e.hostname, attempt))
    for field in _LATEST_WINS:
        value = getattr(e, field)
        if value is not None:
            setattr(view, field, value)
    # Celery publishes a retry with the task itself as parent: the real parent stays
    if e.parent_id is not None and e.parent_id != view.id:
        view.parent_id = e.parent_id
    if e.queue is not None:
        view.queue = e.queue
    kind = e.kind
    if kind == ev.JOB_SENT:
        view.sent_at = e.timestamp if view.sent_at is None else min(view.sent_at, e.timestamp)
    elif e.hostname:
        view.worker = e.hostname
    if kind == ev.JOB_RECEIVED:
        view.received_at = e.timestamp
    elif kind == ev.JOB_STARTED:
        view.started_at = e.timestamp
    retries = e.retries or 0
    if attempt > view.retries or retries > view.retries:
        view.retries = max(attempt, retries)


def _finish(view: JobView, attempt_events: Sequence[tuple[int, FoldInput]]) -> None:
    last_attempt = attempt_events[-1][0]
    final = [e for a, e in attempt_events if a == last_attempt]
    if view.state in _TERMINAL_VALUES:
        end = final[-1]
        view.finished_at = end.timestamp
        succeeded = [e for e in final if e.kind == ev.JOB_SUCCEEDED]
        if succeeded and succeeded[-1].runtime is not None:
            view.runtime = succeeded[-1].runtime
            view.result = succeeded[-1].result
        elif view.started_at is not None and any(e.kind == ev.JOB_STARTED for e in final):
            view.runtime = max(0.0, end.timestamp - view.started_at)
        view.rejected = any(e.kind == ev.JOB_REJECTED for e in final)
    if view.state in _FAILING_VALUES:
        failures = [e for _, e in attempt_events if e.kind in _FAILURE_KINDS and e.exception]
        if failures:
            view.exception = failures[-1].exception
            view.traceback = failures[-1].traceback
        elif view.rejected:
            view.exception = "rejected"


def _outcomes(ordered: Sequence[tuple[int, FoldInput]], view: JobView) -> list[Outcome]:
    out = [
        Outcome(int(e.timestamp // 60 * 60), State.RETRYING.value, None)
        for _, e in ordered
        if e.kind == ev.JOB_RETRIED
    ]
    if view.finished_at is not None:
        out.append(Outcome(int(view.finished_at // 60 * 60), view.state, view.runtime))
    return out


def fold(job_id: str, events: Iterable[FoldInput]) -> JobView:
    """The read model of one job from any collection of its events (order and copies ignored)."""
    return fold_ordered(job_id, order(events))


def fold_ordered(job_id: str, ordered: Sequence[tuple[int, FoldInput]]) -> JobView:
    """`fold`, given the events already put in fold order by `order`."""
    view = JobView(id=job_id, history=[])
    if not ordered:
        return view
    first = last = ordered[0][1].timestamp
    for attempt, e in ordered:
        _apply(view, attempt, e, _state_of(e, attempt))
        if e.timestamp > last:
            last = e.timestamp
        elif e.timestamp < first:
            first = e.timestamp
    _finish(view, ordered)
    view.first_event_at = first
    view.last_event_at = last
    view.events = len(ordered)
    view.outcomes = _outcomes(ordered, view)
    return view
