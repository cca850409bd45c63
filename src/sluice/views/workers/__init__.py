"""Workers: each worker host's latest status, heartbeat, load and software."""

from __future__ import annotations

from sluice.domain.events import Stream

from ..model import Expiry, ReadModel
from .projector import is_worker_event, project_workers

MODEL = ReadModel(
    name="workers",
    tables=("workers",),
    folds=is_worker_event,
    project=project_workers,
    streams=frozenset({Stream.TRAFFIC}),
    expiry=(Expiry("workers", "last_event_at"),),
    depends_on=("jobs",),  # its reader counts recent finishes and queues from jobs
)
