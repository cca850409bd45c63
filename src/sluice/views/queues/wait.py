"""A queue's wait (sent -> started) p50/p95 per bucket, for the queue page's wait chart.

Computed over a bounded sample (the latest started jobs of the window), so a busy queue's
long window shows the recent part of it; the buckets say how many jobs each one holds."""

from __future__ import annotations

import datetime as dt
from typing import Final

import msgspec
import psycopg

from sluice.domain.states import State
from sluice.store.sqlfiles import queries

from .._sql import utc
from .reader import step_for

Q = queries(__package__, "wait.sql")
SAMPLE: Final = 5000


class WaitPoint(msgspec.Struct):
    at: dt.datetime
    jobs: int
    p50: float | None
    p95: float | None


class WaitSeries(msgspec.Struct):
    name: str
    window_s: int
    step_s: int
    sample: int  # at most this many jobs behind the whole series
    points: list[WaitPoint]  # buckets with started jobs only, oldest first


def wait_series(conn: psycopg.Connection, connection_id: str, name: str,
                window: dt.timedelta) -> WaitSeries:
    step = step_for(window)
    params = {"connection_id": connection_id, "name": name, "window": window, "step": step,
              "sample": SAMPLE, "states": [s.value for s in State]}
    points = [WaitPoint(utc(at), int(n), p50, p95)  # type: ignore[arg-type]
              for at, n, p50, p95 in conn.execute(Q["wait_series"], params)]
    return WaitSeries(name, int(window.total_seconds()), int(step.total_seconds()), SAMPLE,
                      points)
