"""The tracked processors every `sluice serve` runs (the command executor), started with
the app and stopped with it. Any number of processes may run them: one holds each at a
time (an advisory lock), another takes over when it goes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from litestar import Litestar
from psycopg_pool import ConnectionPool

from sluice.service.brokers import Clients, InspectCache
from sluice.service.command_executor import CommandExecutor
from sluice.service.processors import Runner
from sluice.store.blocking import in_thread

_INSPECT = "sluice_inspect"


def inspect_cache(app: Litestar) -> InspectCache:
    """The app's cache of workers' inspect answers (its own broker clients)."""
    cache = app.state.get(_INSPECT)
    if not isinstance(cache, InspectCache):
        cache = InspectCache(Clients())
        app.state[_INSPECT] = cache
    return cache


@contextlib.asynccontextmanager
async def executor_lifespan(app: Litestar, pool: ConnectionPool[Any]) -> AsyncIterator[None]:
    executor = CommandExecutor()
    conninfo = pool.conninfo if isinstance(pool.conninfo, str) else pool.conninfo()
    runner = Runner(conninfo, [executor])
    runner.start()
    try:
        yield
    finally:
        await in_thread(runner.stop)
        executor.close()
        cache = app.state.get(_INSPECT)
        if isinstance(cache, InspectCache):
            cache.clients.close()
