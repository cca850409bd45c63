"""The overview: counts by state (1 h / 24 h), failure rate, throughput, top failing tasks.

Finished states come from the minute rollups (cheap at any volume); unfinished ones from the
jobs first seen in the window that are still in that state (a state-index range)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Final

import msgspec
import psycopg

from sluice.domain.states import State
from sluice.store.sqlfiles import queries

from ._common import utc

Q = queries(__file__, "stats.sql")
TOP_FAILING: Final = 10
_FINISHED: Final = (State.COMPLETED.value, State.FAILED.value, State.CANCELLED.value)


class Throughput(msgspec.Struct):
    minute: dt.datetime
    completed: int
    failed: int
    cancelled: int
    retried: int


class FailingTask(msgspec.Struct):
    name: str
    failed: int
    finished: int
    failure_rate: float


class Window(msgspec.Struct):
    counts: dict[str, int]  # every state; finished ones = finished in the window
    retried: int  # retry attempts in the window
    failure_rate: float | None  # failed / (completed + failed + cancelled)


class Overview(msgspec.Struct):
    last_1h: Window
    last_24h: Window
    throughput: list[Throughput]  # per minute, oldest first
    top_failing: list[FailingTask]  # last 24 h


def _window(finished: dict[str, int], in_flight: dict[str, int]) -> Window:
    counts = {s.value: 0 for s in State}
    counts.update({k: v for k, v in finished.items() if k in _FINISHED})
    counts.update(in_flight)
    done = sum(counts[s] for s in _FINISHED)
    rate = round(counts[State.FAILED.value] / done, 4) if done else None
    return Window(counts, finished.get(State.RETRYING.value, 0), rate)


def overview(conn: psycopg.Connection, connection_id: str, minutes: int = 60) -> Overview:
    params = {"connection_id": connection_id, "minutes": minutes}
    fin_1h: dict[str, int] = defaultdict(int)
    fin_24h: dict[str, int] = defaultdict(int)
    by_name: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for name, outcome, hour, day in conn.execute(Q["finished_by_name"], params):
        fin_1h[outcome] += int(hour)
        fin_24h[outcome] += int(day)
        by_name[name or ""][outcome] += int(day)
    fly_1h: dict[str, int] = {}
    fly_24h: dict[str, int] = {}
    for state, hour, day in conn.execute(Q["in_flight_counts"], params):
        fly_1h[state], fly_24h[state] = int(hour), int(day)
    series = [Throughput(utc(m), int(c), int(f), int(x), int(r))  # type: ignore[arg-type]
              for m, c, f, x, r in conn.execute(Q["throughput_series"], params)]
    return Overview(_window(fin_1h, fly_1h), _window(fin_24h, fly_24h), series,
                    _top_failing(by_name))


def _top_failing(by_name: dict[str, dict[str, int]]) -> list[FailingTask]:
    failing = []
    for name, outcomes in by_name.items():
        failed = outcomes.get(State.FAILED.value, 0)
        if failed > 0:
            finished = sum(outcomes.get(s, 0) for s in _FINISHED)
            failing.append(FailingTask(name, failed, finished,
                                       round(failed / finished, 4) if finished else 1.0))
    failing.sort(key=lambda t: (-t.failed, t.name))
    return failing[:TOP_FAILING]
