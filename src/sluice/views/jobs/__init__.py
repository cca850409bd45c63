"""Jobs: each job's row (state, timings, links, history) and the per-minute rollups of
finished attempts, folded together from job events; read as lists, details and the
overview's figures."""

from __future__ import annotations

from sluice.domain.events import Stream

from ..model import Expiry, ReadModel
from .projector import fold_new_jobs, is_job_event, project_jobs

MODEL = ReadModel(
    name="jobs",
    tables=("jobs", "rollups_minute"),
    folds=is_job_event,
    project=project_jobs,
    streams=frozenset({Stream.TRAFFIC}),
    # a job expires with its latest event (its history, in its row, goes with it)
    expiry=(Expiry("jobs", "last_event_at"), Expiry("rollups_minute", "minute")),
    sql_views=("job_transitions",),
    fold_new_jobs=fold_new_jobs,
)
