"""Shared handles for controllers: the pool (on `app.state.pool`) and running blocking DB
work off the event loop.

    from sluice.api.deps import get_pool, in_thread
    rows = await in_thread(my_query, get_pool(request), arg)   # my_query(pool, arg) is sync

The app also registers the dependency `pool` (a `psycopg_pool.ConnectionPool`), so a handler
may simply declare a `pool: ConnectionPool` parameter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import anyio.to_thread
from litestar import Request
from litestar.datastructures import State
from litestar.di import Provide
from psycopg_pool import ConnectionPool

P = ParamSpec("P")
T = TypeVar("T")


def get_pool(request: Request[Any, Any, Any]) -> ConnectionPool:
    pool = request.app.state.get("pool")
    if pool is None:  # only between app creation and the end of start-up
        raise RuntimeError("the database pool is not open yet")
    return pool  # type: ignore[no-any-return]


async def in_thread(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run blocking (psycopg) work in a worker thread; cancellation waits for it to finish,
    so a client that disconnects never leaves a transaction half-done."""
    return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))


def _provide_pool(state: State) -> ConnectionPool:
    return state.pool  # type: ignore[no-any-return]


PROVIDE_POOL = Provide(_provide_pool, sync_to_thread=False)
