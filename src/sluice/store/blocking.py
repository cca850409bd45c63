"""Blocking (psycopg) work run off the event loop, for the async services and the API."""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

import anyio.to_thread

P = ParamSpec("P")
T = TypeVar("T")


async def in_thread(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run blocking work in a worker thread; cancellation waits for it to finish, so a
    client that disconnects never leaves a transaction half-done."""
    return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))
