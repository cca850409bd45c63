"""Liveness (/healthz: the process answers) and readiness (/readyz: the database answers)."""

from __future__ import annotations

import msgspec
from litestar import get
from litestar.types import ControllerRouterHandler

from sluice.service.database import Database
from sluice.store.blocking import in_thread

from .deps import Db
from .docs import NO_AUTH

READY_TIMEOUT_S = 2.0


class Health(msgspec.Struct):
    status: str


def _ping(db: Database) -> None:
    with db.pool.connection(timeout=READY_TIMEOUT_S) as conn:
        conn.execute("SELECT 1")


@get("/healthz", tags=["health"], summary="The process is up", security=NO_AUTH)
async def healthz() -> Health:
    return Health("ok")


@get("/readyz", tags=["health"], summary="The database is reachable (else 503)",
     security=NO_AUTH)
async def readyz(db: Db) -> Health:
    await in_thread(_ping, db)  # a database error answers 503 (errors.py)
    return Health("ready")


ROUTE_HANDLERS: list[ControllerRouterHandler] = [healthz, readyz]
