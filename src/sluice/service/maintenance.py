"""Background upkeep inside `serve`: partitions ahead of time, and the retention purge.

Every replica runs it; both jobs are idempotent and take their own locks, so that is safe.
"""

from __future__ import annotations

import asyncio
import logging

import psycopg
from psycopg_pool import ConnectionPool

from sluice.store import partitions
from sluice.store.blocking import in_thread

from . import retention

log = logging.getLogger("sluice.maintenance")


def run_once(pool: ConnectionPool) -> retention.PurgeResult:
    with pool.connection() as conn:
        partitions.ensure_window(conn)
        return retention.purge(conn)


async def maintenance_loop(pool: ConnectionPool, interval_s: float, first_delay_s: float) -> None:
    """Run `run_once` after `first_delay_s`, then every `interval_s`, until cancelled."""
    await asyncio.sleep(first_delay_s)
    while True:
        try:
            await in_thread(run_once, pool)
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            log.warning("maintenance skipped, database unavailable: %s", type(exc).__name__)
        except Exception:
            log.exception("maintenance failed")
        await asyncio.sleep(interval_s)
