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

Q = queries(__file__)


def _order(e: Event) -> tuple[float, int, str]:
    return (e.timestamp, e.clock or 0, e.dedup_key)


def project_workers(conn: psycopg.Connection, connection_id: str, events: Sequence[Event],
                    received_at: dt.datetime | None = None) -> None:
    """received_at: when the events reached Sluice (None: now, i.e. this transaction)."""
    by_host: dict[str, list[Event]] = defaultdict(list)
    for e in events:
        by_host[e.hostname or ""].append(e)
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
        for field in ("freq", "active", "processed", "sw_ident", "sw_ver", "sw_sys", "pid"):
            cols[field].append(getattr(latest, field))
        loadavg = latest.loadavg
        cols["loadavg"].append(
            None if loadavg is None else "{" + ",".join(repr(x) for x in loadavg) + "}"
        )
    params = {"connection_id": connection_id, "received_at": received_at, **cols}
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
