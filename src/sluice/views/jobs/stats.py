"""The overview: counts by state (1 h / 24 h), failure rate, throughput, top failing tasks.

Finished states come from the minute rollups; unfinished ones from the jobs first seen in the
window that are still in that state (a state-index range). A day of minute rollups is up to
minutes x task names x queues x outcomes rows (~1M at 10M jobs/week), too many to sum per
request: the closed hours of the 24 h window are summed and cached per process (the last
RECENT_HOURS re-summed every HOUR_TTL_S, older ones every OLD_HOUR_TTL_S); the last hour and
the window's two partial hours are always read live."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter, defaultdict
from typing import Final

import msgspec
import psycopg

from sluice.domain.states import State
from sluice.store.sqlfiles import queries

from .._sql import utc

Q = queries(__package__, "stats.sql")
TOP_FAILING: Final = 10
HOUR_TTL_S: Final = 60.0  # a recent closed hour's sums may lag late events by this long
OLD_HOUR_TTL_S: Final = 600.0  # ... and an hour older than RECENT_HOURS this long
RECENT_HOURS: Final = 3
_HOUR: Final = dt.timedelta(hours=1)
_DAY: Final = dt.timedelta(hours=24)
# (name, outcome) -> finished count
Sums = Counter[tuple[str, str]]
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


class _HourCache:
    """Per-process sums of closed hours: (connection, hour) -> (expiry, sums)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hours: dict[tuple[str, dt.datetime], tuple[float, Sums]] = {}

    def get(self, connection_id: str, hour: dt.datetime) -> Sums | None:
        with self._lock:
            hit = self._hours.get((connection_id, hour))
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

    def put(self, connection_id: str, sums: dict[dt.datetime, Sums], oldest: dt.datetime,
            now: dt.datetime) -> None:
        clock = time.monotonic()
        with self._lock:
            for hour, hour_sums in sums.items():
                # late events mostly land in the last hours: re-sum those more often
                recent = hour >= now - dt.timedelta(hours=RECENT_HOURS)
                ttl = HOUR_TTL_S if recent else OLD_HOUR_TTL_S
                self._hours[(connection_id, hour)] = (clock + ttl, hour_sums)
            for key in [k for k in self._hours if k[0] == connection_id and k[1] < oldest]:
                del self._hours[key]  # slid out of the window

    def clear(self) -> None:
        with self._lock:
            self._hours.clear()


HOURS = _HourCache()


def _between(conn: psycopg.Connection, connection_id: str, start: dt.datetime,
             end: dt.datetime) -> Sums:
    sums: Sums = Counter()
    if start < end:
        params = {"connection_id": connection_id, "start": start, "end": end}
        for name, outcome, count in conn.execute(Q["finished_between"], params):
            sums[(name or "", outcome)] += int(count)
    return sums


def _closed_hours(conn: psycopg.Connection, connection_id: str, first: dt.datetime,
                  end: dt.datetime) -> Sums:
    """Sums of the whole hours in [first, end), from the cache or one grouped query."""
    hours = []
    hour = first
    while hour < end:
        hours.append(hour)
        hour += _HOUR
    cached = {h: HOURS.get(connection_id, h) for h in hours}
    missing = [h for h, sums in cached.items() if sums is None]
    if missing:
        fresh: dict[dt.datetime, Sums] = {h: Counter() for h in missing}
        params = {"connection_id": connection_id, "start": missing[0],
                  "end": missing[-1] + _HOUR}
        for at, name, outcome, count in conn.execute(Q["finished_by_hour"], params):
            key = utc(at)
            if key in fresh:
                fresh[key][(name or "", outcome)] += int(count)
        HOURS.put(connection_id, fresh, first, end)
        cached.update(fresh)
    total: Sums = Counter()
    for sums in cached.values():
        total.update(sums or {})
    return total


def _by_outcome(sums: Sums) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for (_, outcome), count in sums.items():
        out[outcome] += count
    return out


def overview(conn: psycopg.Connection, connection_id: str, minutes: int = 60) -> Overview:
    row = conn.execute(Q["db_now"]).fetchone()
    now: dt.datetime = utc(row[0]) if row else dt.datetime.now(dt.UTC)  # type: ignore[assignment]
    this_hour = now.replace(minute=0, second=0, microsecond=0)
    start = now - _DAY
    first_full = start.replace(minute=0, second=0, microsecond=0)
    if first_full < start:
        first_full += _HOUR
    far = now + _DAY  # rollup minutes are source times: a clock ahead still counts
    day = _between(conn, connection_id, start, first_full)
    day.update(_closed_hours(conn, connection_id, first_full, this_hour))
    day.update(_between(conn, connection_id, this_hour, far))
    hour = _between(conn, connection_id, now - _HOUR, far)
    params = {"connection_id": connection_id, "minutes": minutes}
    fly_1h: dict[str, int] = {}
    fly_24h: dict[str, int] = {}
    for state, in_hour, in_day in conn.execute(Q["in_flight_counts"], params):
        fly_1h[state], fly_24h[state] = int(in_hour), int(in_day)
    series = [Throughput(utc(m), int(c), int(f), int(x), int(r))  # type: ignore[arg-type]
              for m, c, f, x, r in conn.execute(Q["throughput_series"], params)]
    by_name: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for (name, outcome), count in day.items():
        by_name[name][outcome] += count
    return Overview(_window(_by_outcome(hour), fly_1h), _window(_by_outcome(day), fly_24h),
                    series, _top_failing(by_name))


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
