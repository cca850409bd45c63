"""Queues: the latest depth and consumers of each queue, and the samples for charts."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from sluice.domain.events import QUEUE_SAMPLED, Event
from sluice.store.sqlfiles import queries

from ..model import Context

Q = queries(__package__, "projector.sql")


def is_queue_sample(e: Event) -> bool:
    return e.kind == QUEUE_SAMPLED


def project_queues(conn: psycopg.Connection, connection_id: str, samples: Sequence[Event],
                   ctx: Context) -> set[str]:
    """The latest sample of each queue, and every sample for the charts."""
    conn.execute(
        Q["insert_queue_samples"],
        {
            "connection_id": connection_id,
            "name": [e.queue for e in samples],
            "sampled_at": [e.timestamp for e in samples],
            "depth": [e.depth for e in samples],
            "consumers": [e.consumers for e in samples],
        },
    )
    latest: dict[str, Event] = {}
    for e in samples:
        name = e.queue or ""
        if name not in latest or (e.timestamp, e.dedup_key) > (
            latest[name].timestamp, latest[name].dedup_key
        ):
            latest[name] = e
    names = sorted(latest)
    conn.execute(
        Q["upsert_queues"],
        {
            "connection_id": connection_id,
            "name": names,
            "depth": [latest[n].depth for n in names],
            "consumers": [latest[n].consumers for n in names],
            "sampled_at": [latest[n].timestamp for n in names],
            "sample_key": [latest[n].dedup_key for n in names],
        },
    )
    return set()
