"""Queue reads: depth and consumers (broker samples), throughput and wait (jobs, rollups)."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any, Final

import msgspec
import psycopg
from psycopg.rows import dict_row

from sluice.domain.states import State
from sluice.store.sqlfiles import queries

from .._sql import utc

Q = queries(__package__, "reader.sql")
THROUGHPUT_MINUTES: Final = 5  # throughput = finishes of the last complete minutes / minutes
WAIT_SAMPLE: Final = 1000  # latest started jobs (of the last hour) behind wait p50/p95
MAX_POINTS: Final = 360  # a series longer than this many minutes gets wider buckets


class Queue(msgspec.Struct, kw_only=True):
    name: str
    depth: int | None  # None: no broker sample (SDK without agent)
    consumers: int | None  # broker's count, else workers that started its jobs lately
    sampled_at: dt.datetime | None
    throughput: float  # finished per minute
    wait_p50: float | None  # seconds from sent to started
    wait_p95: float | None


class SeriesPoint(msgspec.Struct):
    at: dt.datetime
    completed: int
    failed: int
    cancelled: int
    retried: int
    runtime_avg: float | None
    depth: int | None


class Series(msgspec.Struct):
    name: str
    window_s: int
    step_s: int
    points: list[SeriesPoint]


def _queue(row: dict[str, Any]) -> Queue:
    consumers = row["consumers"]
    if consumers is None and row["workers"]:
        consumers = row["workers"]
    return Queue(
        name=row["name"],
        depth=row["depth"],
        consumers=consumers,
        sampled_at=utc(row["sampled_at"]),
        throughput=round(float(row["finished_recent"]) / THROUGHPUT_MINUTES, 3),
        wait_p50=row["p50"],
        wait_p95=row["p95"],
    )


def list_queues(conn: psycopg.Connection, connection_id: str, name: str | None = None
                ) -> list[Queue]:
    params = {"connection_id": connection_id, "name": name, "minutes": THROUGHPUT_MINUTES,
              "wait_sample": WAIT_SAMPLE, "states": [s.value for s in State]}
    with conn.cursor(row_factory=dict_row) as cur:
        return [_queue(r) for r in cur.execute(Q["list_queues"], params)]


def get_queue(conn: psycopg.Connection, connection_id: str, name: str) -> Queue | None:
    found = list_queues(conn, connection_id, name)
    return found[0] if found else None


def step_for(window: dt.timedelta) -> dt.timedelta:
    """Whole minutes, at most MAX_POINTS buckets per window."""
    minutes = max(1, math.ceil(window.total_seconds() / 60 / MAX_POINTS))
    return dt.timedelta(minutes=minutes)


def queue_series(conn: psycopg.Connection, connection_id: str, name: str,
                 window: dt.timedelta) -> Series:
    step = step_for(window)
    params = {"connection_id": connection_id, "name": name, "window": window, "step": step}
    points = [
        SeriesPoint(utc(at), int(c), int(f), int(x), int(r), avg, depth)  # type: ignore[arg-type]
        for at, c, f, x, r, avg, depth in conn.execute(Q["queue_series"], params)
    ]
    return Series(name, int(window.total_seconds()), int(step.total_seconds()), points)
