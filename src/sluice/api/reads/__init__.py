"""The read API: jobs, workers, queues, stats, and the SSE event stream.

The app factory mounts `ROUTE_HANDLERS` and enters each of `LIFESPAN` (here
`sluice.api.stream.STREAM_LIFESPAN`: the stream's LISTEN connection and fan-out).
Every handler needs a key with the `read` scope and is scoped to that key's connection.
"""

from __future__ import annotations

from typing import Any

from sluice.api.stream import STREAM_LIFESPAN, stream_events

from .jobs import JobsController
from .queues import QueuesController
from .stats import StatsController
from .workers import WorkersController

ROUTE_HANDLERS: list[Any] = [
    JobsController,
    WorkersController,
    QueuesController,
    StatsController,
    stream_events,
]

LIFESPAN: list[Any] = [STREAM_LIFESPAN]

__all__ = ["LIFESPAN", "ROUTE_HANDLERS"]
