"""A worker's throughput over a window: finishes per bucket and their mean runtime."""

from __future__ import annotations

import datetime as dt
import math
from typing import Final

import msgspec
import psycopg

from sluice.store.sqlfiles import queries

from .._sql import utc

Q = queries(__package__, "series.sql")
MAX_POINTS: Final = 180


class WorkerPoint(msgspec.Struct):
    at: dt.datetime
    completed: int
    failed: int
    runtime_avg: float | None


class WorkerSeries(msgspec.Struct):
    hostname: str
    window_s: int
    step_s: int
    points: list[WorkerPoint]


def worker_series(conn: psycopg.Connection, connection_id: str, hostname: str,
                  window: dt.timedelta) -> WorkerSeries:
    step = dt.timedelta(minutes=max(1, math.ceil(window.total_seconds() / 60 / MAX_POINTS)))
    params = {"connection_id": connection_id, "hostname": hostname, "window": window,
              "step": step}
    points = [WorkerPoint(utc(at), int(c), int(f), avg)  # type: ignore[arg-type]
              for at, c, f, avg in conn.execute(Q["worker_series"], params)]
    return WorkerSeries(hostname, int(window.total_seconds()), int(step.total_seconds()),
                        points)
