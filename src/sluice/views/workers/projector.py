"""Workers: the latest status, heartbeat and load of each worker host."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import psycopg

from sluice.domain import events as ev
from sluice.domain.events import Event
from sluice.store.sqlfiles import queries

from ..model import Context

Q = queries(__package__, "projector.sql")


def _order(e: Event) -> tuple[float, int, str]:
    return (e.timestamp, e.clock or 0, e.dedup_key)


def is_worker_event(e: Event) -> bool:
    return e.kind in ev.WORKER_STATUS_KINDS


def project_workers(conn: psycopg.Connection, connection_id: str, events: Sequence[Event],
                    ctx: Context) -> set[str]:
    """A worker's row follows its latest event; `last_received_at` is when that event
    reached Sluice (`ctx.received_at`, per event; None: now, i.e. this transaction)."""
    by_host: dict[str, list[Event]] = defaultdict(list)
    received: dict[str, dt.datetime | None] = {}
    arrivals = ctx.received_at
    for i, e in enumerate(events):
        by_host[e.hostname or ""].append(e)
        received[e.dedup_key] = arrivals[i] if arrivals is not None else None
    cols: dict[str, list[Any]] = defaultdict(list)
    for host in sorted(by_host):
        mine = by_host[host]
        latest = max(mine, key=_order)
        beats = [e.timestamp for e in mine if e.kind != ev.WORKER_OFFLINE]
        cols["hostname"].append(host)
        cols["status"].append("offline" if latest.kind == ev.WORKER_OFFLINE else "online")
        cols["first_seen_at"].append(min(e.timestamp for e in mine))
        cols["last_event_at"].append(latest.timestamp)
        cols["clock"].append(latest.clock or 0)
        cols["dedup_key"].append(latest.dedup_key)
        cols["last_heartbeat"].append(max(beats) if beats else None)
        cols["received_at"].append(received[latest.dedup_key])
        for field in ("freq", "active", "processed", "sw_ident", "sw_ver", "sw_sys", "pid"):
            cols[field].append(getattr(latest, field))
        loadavg = latest.loadavg
        cols["loadavg"].append(
            None if loadavg is None else "{" + ",".join(repr(x) for x in loadavg) + "}"
        )
    params = {"connection_id": connection_id, **cols}
    conn.execute(Q["upsert_workers"], params)
    conn.execute(
        Q["widen_workers"],
        {
            "connection_id": connection_id,
            "hostname": cols["hostname"],
            "first_seen_at": cols["first_seen_at"],
            "last_heartbeat": cols["last_heartbeat"],
        },
    )
    return set()
