"""The Litestar application: `create_app()`; `sluice serve` runs it under uvicorn.

Controllers (one module per resource) receive the `db` service by dependency injection
(deps.py) and authenticate with `sluice.api.auth.requires(scope)`. Start-up opens the pool,
applies migrations, starts the log follower behind SSE and the background upkeep.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, cast

from litestar import Litestar
from litestar.types import ControllerRouterHandler
from psycopg_pool import ConnectionPool

from sluice.service.database import Database
from sluice.service.maintenance import maintenance_loop
from sluice.store import db as store_db
from sluice.store import partitions
from sluice.store.blocking import in_thread
from sluice.store.migrations import migrate

from . import (
    commands,
    connection,
    connection_health,
    controls,
    dashboard,
    docs,
    health,
    ingest,
    jobs,
    queues,
    stats,
    stream,
    workers,
)
from .dashboard_reads import ROUTE_HANDLERS as DASHBOARD_READS
from .deps import PROVIDE_DB, set_database
from .errors import EXCEPTION_HANDLERS
from .executor import executor_lifespan
from .logs import access_log_middleware
from .nul_guard import nul_guard_middleware
from .security_headers import add_security_headers
from .session import ROUTE_HANDLERS as SESSION_HANDLERS

log = logging.getLogger("sluice.api")
POOL_MAX_SIZE = 10
# A request waits at most this long for a connection before answering 503.
POOL_TIMEOUT_S = 5.0
MAINTENANCE_INTERVAL_S = 3600.0

Lifespan = Callable[[Litestar], AbstractAsyncContextManager[Any]]


def open_server_pool(url: str, max_size: int = POOL_MAX_SIZE) -> ConnectionPool:
    """A pool that checks each connection on checkout, so one that died with a PostgreSQL
    restart is replaced rather than handed to a request (recovery without client errors)."""
    pool = ConnectionPool(
        url,
        min_size=2,
        max_size=max_size,
        name="sluice-api",
        open=False,
        timeout=POOL_TIMEOUT_S,
        check=ConnectionPool.check_connection,
        kwargs={"autocommit": True},
    )
    pool.open(wait=True, timeout=30)
    return pool


def _prepare(pool: ConnectionPool) -> None:
    with pool.connection() as conn:
        applied = migrate(conn)
        if applied:
            log.info("applied migrations %s", ", ".join(applied))
        partitions.ensure_window(conn)


def create_app(
    pool: ConnectionPool | None = None,
    *,
    database_url: str | None = None,
    extra_route_handlers: Sequence[ControllerRouterHandler] = (),
    maintenance_interval_s: float | None = MAINTENANCE_INTERVAL_S,
    maintenance_first_delay_s: float = 30.0,
    pool_max_size: int = POOL_MAX_SIZE,
    include_reads: bool = True,
    run_processors: bool = True,
    debug: bool = False,
) -> Litestar:
    """The Sluice API app.

    pool: an open pool to use (not closed at shutdown); else one is opened at start-up on
    `database_url` (default: SLUICE_DATABASE_URL or the embedded PostgreSQL) and closed at
    shutdown. Start-up applies migrations and creates the log's partitions.
    maintenance_interval_s: period of the partition/retention job; None disables it.
    include_reads: mount the read API and its event stream (tests of ingest alone pass
    False).
    run_processors: run the tracked processors (the command executor) in this process.
    """
    url = database_url
    reads_handlers: list[ControllerRouterHandler] = [
        jobs.JobsController, workers.WorkersController, queues.QueuesController,
        stats.StatsController, stream.stream_events, connection.ConnectionController,
        connection_health.ConnectionHealthController,
        *commands.ROUTE_HANDLERS, *controls.ROUTE_HANDLERS,
        *SESSION_HANDLERS, *DASHBOARD_READS] if include_reads else []
    reads_lifespans: list[Lifespan] = [stream.STREAM_LIFESPAN] if include_reads else []

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        own = pool is None
        the_pool = pool if pool is not None else await in_thread(
            open_server_pool, url or _default_url(), pool_max_size)
        try:
            await in_thread(_prepare, the_pool)
            app.state.pool = the_pool
            set_database(app.state, Database(the_pool))
            task = None
            if maintenance_interval_s is not None:
                task = asyncio.create_task(maintenance_loop(
                    the_pool, maintenance_interval_s, maintenance_first_delay_s))
            try:
                async with contextlib.AsyncExitStack() as stack:
                    if run_processors:
                        await stack.enter_async_context(executor_lifespan(app, the_pool))
                    for extra in reads_lifespans:
                        await stack.enter_async_context(extra(app))
                    yield
            finally:
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        finally:
            set_database(app.state, None)
            if own:
                # uvicorn runs this after in-flight requests finished (graceful shutdown).
                await in_thread(the_pool.close)

    dashboard_handlers = cast("list[ControllerRouterHandler]", dashboard.ROUTE_HANDLERS)
    return Litestar(
        route_handlers=[*ingest.ROUTE_HANDLERS, *health.ROUTE_HANDLERS, *reads_handlers,
                        *dashboard_handlers, *extra_route_handlers],
        lifespan=[lifespan],
        dependencies={"db": PROVIDE_DB},
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[access_log_middleware, nul_guard_middleware],
        before_send=[add_security_headers],  # every response, routed or not
        openapi_config=docs.openapi_config("Sluice", _version()),
        # Logging is the process's business (`sluice serve` sets JSON lines); Litestar's
        # default queue-based config would reformat it and drop lines at exit.
        logging_config=None,
        debug=debug,
    )


def _default_url() -> str:
    return store_db.database_url()


def _version() -> str:
    from sluice import __version__  # the one version, which the packaging reads too

    return __version__
