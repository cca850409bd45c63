"""Set-based projection of one appended batch into every read model (same transaction)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import psycopg

from sluice.domain import events as ev
from sluice.domain.events import Event

from .jobs import project_jobs
from .queues import project_queues
from .workers import project_workers


def project_batch(conn: psycopg.Connection, connection_id: str, events: Sequence[Event],
                  received_at: dt.datetime | None = None) -> None:
    """Fold new events into the read models. Idempotent: projecting an event again, or in
    another order, leaves the same rows (the folds are joins over event sets).
    received_at: when the batch reached Sluice (replay passes the log's; live: now)."""
    job_events = [e for e in events if e.job_id and e.kind in ev.JOB_KINDS]
    if job_events:
        project_jobs(conn, connection_id, job_events)
    worker_events = [e for e in events if e.kind in ev.WORKER_STATUS_KINDS]
    if worker_events:
        project_workers(conn, connection_id, worker_events, received_at)
    samples = [e for e in events if e.kind == ev.QUEUE_SAMPLED]
    if samples:
        project_queues(conn, connection_id, samples)
