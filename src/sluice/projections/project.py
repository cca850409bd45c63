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
                  received_at: dt.datetime | None = None, *, wait: bool = True) -> set[str]:
    """Fold new events into the read models. Idempotent: projecting an event again, or in
    another order, leaves the same rows (the folds are joins over event sets).
    received_at: when the batch reached Sluice (replay passes the log's; live: now).
    Without `wait`, the events of jobs that another append is projecting are left out:
    answers those jobs (`is_job_event` tells which events are theirs)."""
    held: set[str] = set()
    job_events = [e for e in events if is_job_event(e)]
    if job_events:
        held = project_jobs(conn, connection_id, job_events, wait=wait)
    worker_events = [e for e in events if e.kind in ev.WORKER_STATUS_KINDS]
    if worker_events:
        project_workers(conn, connection_id, worker_events, received_at)
    samples = [e for e in events if e.kind == ev.QUEUE_SAMPLED]
    if samples:
        project_queues(conn, connection_id, samples)
    return held


def is_job_event(e: Event) -> bool:
    """Whether the jobs projection folds this event."""
    return bool(e.job_id) and e.kind in ev.JOB_KINDS
