"""The server's database handle for controllers and services: its connection pool, with
blocking work run in a worker thread, a pooled connection lent for the call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar

import psycopg
from psycopg_pool import ConnectionPool

from sluice.store.blocking import in_thread

P = ParamSpec("P")
T = TypeVar("T")


class Database:
    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool

    def call(self, fn: Callable[Concatenate[psycopg.Connection, P], T], *args: P.args,
             **kwargs: P.kwargs) -> T:
        """`fn(conn, *args, **kwargs)` on a pooled connection, here (blocking)."""
        with self.pool.connection() as conn:
            return fn(conn, *args, **kwargs)

    async def run(self, fn: Callable[Concatenate[psycopg.Connection, P], T], *args: P.args,
                  **kwargs: P.kwargs) -> T:
        """`call`, in a worker thread (off the event loop)."""
        return await in_thread(self.call, fn, *args, **kwargs)  # type: ignore[arg-type]
