"""Commands: one row per command (retry, revoke, worker/queue/task controls, bulk actions),
folded from the system stream's `command.*` events; read as lists, details with a bulk
action's progress, a job's command entries and the retry links between jobs."""

from __future__ import annotations

from sluice.domain.events import Stream

from ..model import ReadModel
from .projector import is_command_event, project_commands

MODEL = ReadModel(
    name="commands",
    tables=("commands",),
    folds=is_command_event,
    project=project_commands,
    streams=frozenset({Stream.SYSTEM}),  # never expires with traffic
    depends_on=("jobs",),  # executors read the jobs a command is about
)
