"""How long a job spent in each phase, from its state history."""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import msgspec

from .states import State


class Timing(msgspec.Struct):
    """Seconds spent per phase, summed over attempts (None when never in that phase)."""

    queued: float | None
    scheduled: float | None  # waiting for an ETA / countdown (incl. retry delays)
    runtime: float | None
    total: float | None  # first seen -> finished (or -> last event while unfinished)


def _seconds(start: float, end: float) -> float:
    # Times are microsecond-exact (as timestamptz keeps them), but a float at epoch scale is
    # not: rounded to whole microseconds, a difference carries no error from either end.
    # Clocks of producer and worker differ: never report a negative phase.
    return max(0.0, round((end - start) * 1_000_000) / 1_000_000)


def timing(history: Iterable[tuple[str, float]], *, first_seen_at: float | None,
           last_event_at: float | None, finished_at: float | None,
           runtime: float | None) -> Timing:
    """A job's timing from its history, (state, epoch seconds) in fold order, and its row's
    times (epoch seconds); `runtime` as the job reported it, if it did."""
    spent: dict[str, float] = {}
    for (state, at), (_, next_at) in itertools.pairwise(history):
        spent[state] = spent.get(state, 0.0) + _seconds(at, next_at)
    end = finished_at if finished_at is not None else last_event_at
    total = None
    if end is not None and first_seen_at is not None:
        total = _seconds(first_seen_at, end)
    waiting = [s for s in (State.SCHEDULED, State.RETRYING) if s.value in spent]
    return Timing(
        queued=spent.get(State.QUEUED.value),
        scheduled=sum(spent[s.value] for s in waiting) if waiting else None,
        runtime=runtime if runtime is not None else spent.get(State.ACTIVE.value),
        total=total,
    )
