"""Worker reads: reported status plus Celery's own liveness rule, load and recent work."""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

import msgspec
import psycopg
from psycopg.rows import dict_row

from sluice.store.sqlfiles import queries

from .._sql import utc

Q = queries(__package__, "reader.sql")
# celery.events.state.heartbeat_expires: timestamp + freq * (HEARTBEAT_EXPIRE_WINDOW / 100),
# HEARTBEAT_EXPIRE_WINDOW = 200, and freq defaults to 60 s when a worker did not say.
EXPIRE_FACTOR: Final = 200 / 1e2
DEFAULT_FREQ: Final = 60.0
TPM_MINUTES: Final = 5  # tasks per minute = finishes over this many minutes / minutes
QUEUE_SAMPLE: Final = 500  # latest jobs of a worker that name the queues it consumes


class Software(msgspec.Struct):
    ident: str | None
    version: str | None
    system: str | None


class Worker(msgspec.Struct, kw_only=True):
    hostname: str
    status: str  # online | offline | lost
    last_heartbeat: dt.datetime | None
    heartbeat_age: float | None  # seconds since Sluice last heard from it (its clock aside)
    heartbeat_expires: dt.datetime | None
    freq: float | None
    active: int | None
    processed: int | None
    loadavg: list[float] | None
    software: Software
    pid: int | None
    first_seen_at: dt.datetime | None
    last_event_at: dt.datetime | None
    tasks_per_minute: float
    queues: list[str]


def status(reported: str, last_heartbeat: dt.datetime | None, freq: float | None,
           now: dt.datetime) -> tuple[str, dt.datetime | None]:
    """(status, heartbeat expiry): `lost` when heartbeats stopped past Celery's expiry window
    without a worker-offline (a SIGKILLed or partitioned worker). `last_heartbeat` is when it
    was received, as in Celery's State, so a worker whose clock is off is not misjudged."""
    if last_heartbeat is None:
        return ("offline" if reported == "offline" else "lost"), None
    expires = last_heartbeat + dt.timedelta(seconds=(freq or DEFAULT_FREQ) * EXPIRE_FACTOR)
    if reported == "offline":
        return "offline", expires
    return ("online" if now < expires else "lost"), expires


def _worker(row: dict[str, Any]) -> Worker:
    now, beat = row["now"], utc(row["last_heartbeat"])
    heard = utc(row["last_received_at"]) if beat is not None else None
    state, expires = status(row["status"], heard, row["freq"], now)
    return Worker(
        hostname=row["hostname"],
        status=state,
        last_heartbeat=beat,
        heartbeat_age=None if heard is None else max(0.0, (now - heard).total_seconds()),
        heartbeat_expires=expires,
        freq=row["freq"],
        active=row["active"],
        processed=row["processed"],
        loadavg=row["loadavg"],
        software=Software(row["sw_ident"], row["sw_ver"], row["sw_sys"]),
        pid=row["pid"],
        first_seen_at=utc(row["first_seen_at"]),
        last_event_at=utc(row["last_event_at"]),
        tasks_per_minute=round(row["finished_recent"] / TPM_MINUTES, 3),
        queues=row["queues"],
    )


def list_workers(conn: psycopg.Connection, connection_id: str, hostname: str | None = None
                 ) -> list[Worker]:
    params = {"connection_id": connection_id, "hostname": hostname,
              "tpm_minutes": TPM_MINUTES, "queue_sample": QUEUE_SAMPLE}
    with conn.cursor(row_factory=dict_row) as cur:
        return [_worker(r) for r in cur.execute(Q["list_workers"], params)]


def get_worker(conn: psycopg.Connection, connection_id: str, hostname: str) -> Worker | None:
    found = list_workers(conn, connection_id, hostname)
    return found[0] if found else None
