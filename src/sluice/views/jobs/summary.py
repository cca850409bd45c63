"""The overview over a range (1 h, 24 h, 7 d): every state's count, failure rate, finishes per
bucket, runtime and queue-wait p50/p95, top failing tasks.

Finished states come from the minute rollups (finished in the range); unfinished ones from
the jobs first seen in the range still in that state. Percentiles are of a bounded sample
(the latest completed jobs of the range)."""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from typing import Final

import msgspec
import psycopg

from sluice.domain.states import State
from sluice.store.sqlfiles import queries

from .._sql import utc
from .stats import TOP_FAILING, FailingTask

Q = queries(__package__, "summary.sql")
RANGES: Final = {"1h": dt.timedelta(hours=1), "24h": dt.timedelta(hours=24),
                 "7d": dt.timedelta(days=7)}
MAX_BUCKETS: Final = 180
TIMING_SAMPLE: Final = 2000
_FINISHED: Final = (State.COMPLETED.value, State.FAILED.value, State.CANCELLED.value)


class Bucket(msgspec.Struct):
    at: dt.datetime
    completed: int
    failed: int
    cancelled: int
    retried: int


class Percentiles(msgspec.Struct):
    p50: float | None
    p95: float | None
    sample: int  # how many jobs they were computed over


class Summary(msgspec.Struct):
    range: str
    step_s: int
    counts: dict[str, int]  # every state
    retried: int
    failure_rate: float | None  # failed / (completed + failed + cancelled)
    series: list[Bucket]
    runtime: Percentiles
    wait: Percentiles
    top_failing: list[FailingTask]


def step_for(span: dt.timedelta) -> dt.timedelta:
    """Whole minutes, at most MAX_BUCKETS buckets."""
    return dt.timedelta(minutes=max(1, math.ceil(span.total_seconds() / 60 / MAX_BUCKETS)))


def summary(conn: psycopg.Connection, connection_id: str, range_name: str) -> Summary:
    span = RANGES[range_name]
    step = step_for(span)
    params = {"connection_id": connection_id, "range": span, "step": step,
              "sample": TIMING_SAMPLE}
    counts = {s.value: 0 for s in State}
    by_name: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    retried = 0
    for name, outcome, count in conn.execute(Q["finished_by_name"], params):
        by_name[name or ""][outcome] += int(count)
        if outcome in _FINISHED:
            counts[outcome] += int(count)
        elif outcome == State.RETRYING.value:
            retried += int(count)
    for state, count in conn.execute(Q["in_flight"], params):
        counts[state] = int(count)
    done = sum(counts[s] for s in _FINISHED)
    rate = round(counts[State.FAILED.value] / done, 4) if done else None
    series = [Bucket(utc(at), int(c), int(f), int(x), int(r))  # type: ignore[arg-type]
              for at, c, f, x, r in conn.execute(Q["series"], params)]
    row = conn.execute(Q["timing_percentiles"], params).fetchone()
    n_run, r50, r95, n_wait, w50, w95 = row if row else (0, None, None, 0, None, None)
    top = []
    for name, outcomes in by_name.items():
        failed = outcomes.get(State.FAILED.value, 0)
        if failed:
            finished = sum(outcomes.get(s, 0) for s in _FINISHED)
            top.append(FailingTask(name, failed, finished,
                                   round(failed / finished, 4) if finished else 1.0))
    top.sort(key=lambda t: (-t.failed, t.name))
    return Summary(range_name, int(step.total_seconds()), counts, retried, rate, series,
                   Percentiles(r50, r95, int(n_run)), Percentiles(w50, w95, int(n_wait)),
                   top[:TOP_FAILING])
