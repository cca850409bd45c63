"""Liveness (/healthz: the process answers) and readiness (/readyz: the database answers)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, get
from litestar.types import ControllerRouterHandler
from psycopg_pool import ConnectionPool

from .deps import get_pool, in_thread

READY_TIMEOUT_S = 2.0


class Health(msgspec.Struct):
    status: str


def _ping(pool: ConnectionPool) -> None:
    with pool.connection(timeout=READY_TIMEOUT_S) as conn:
        conn.execute("SELECT 1")


@get("/healthz", tags=["health"], summary="The process is up")
async def healthz() -> Health:
    return Health("ok")


@get("/readyz", tags=["health"], summary="The database is reachable (else 503)")
async def readyz(request: Request[Any, Any, Any]) -> Health:
    await in_thread(_ping, get_pool(request))  # a database error answers 503 (errors.py)
    return Health("ready")


ROUTE_HANDLERS: list[ControllerRouterHandler] = [healthz, readyz]
