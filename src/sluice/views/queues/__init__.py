"""Queues: each queue's latest broker sample (depth, consumers) and every sample, for
charts."""

from __future__ import annotations

from sluice.domain.events import Stream

from ..model import Expiry, ReadModel
from .projector import is_queue_sample, project_queues

MODEL = ReadModel(
    name="queues",
    tables=("queues", "queue_samples"),
    folds=is_queue_sample,
    project=project_queues,
    streams=frozenset({Stream.TRAFFIC}),
    expiry=(Expiry("queue_samples", "sampled_at"), Expiry("queues", "sampled_at")),
    depends_on=("jobs",),  # its reader takes throughput and wait from jobs and rollups
)
