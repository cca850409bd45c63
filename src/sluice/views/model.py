"""What declaring a read model takes: its tables, the events it folds, its projector, its
retention, and the streams it derives from."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import psycopg

from sluice.domain.events import Event, Stream

# project(conn, connection_id, events, context) -> the job ids left out (held by another
# append; only a projector with per-job locks leaves any out). Idempotent: projecting an
# event again, or events in another order, leaves the same rows.
Projector = Callable[[psycopg.Connection, str, Sequence[Event], "Context"], set[str]]

# fold_new_jobs(conn, connection_id, jobs): every event of each job that the model folds
# (job id -> its events; such a model folds only events with a job id), none of these jobs
# in its tables yet. A rebuild's first pass reads the log job by job and hands each job over
# once, so the projector's per-job reads and rewrites are skipped. Float sums may then add
# up in another order than live ingest's.
NewJobsFolder = Callable[[psycopg.Connection, str, Mapping[str, Sequence[Event]]], None]


@dataclass(frozen=True)
class Context:
    """How a projection runs. `received_at`: when each event reached Sluice (replay passes
    the log's ingested_at; None: now). `wait`: whether to wait for rows another append is
    projecting (False: leave them out and say which). `exclusive`: the tables are the
    caller's alone (a rebuild's shadow tables): no per-row locks are needed."""

    received_at: Sequence[dt.datetime | None] | None = None
    wait: bool = True
    exclusive: bool = False


@dataclass(frozen=True)
class Expiry:
    """Rows of `table` whose `column` is older than a connection's retention expire."""

    table: str
    column: str


@dataclass(frozen=True)
class ReadModel:
    name: str
    tables: tuple[str, ...]  # every table it owns, written only by its projector
    folds: Callable[[Event], bool]  # the events its projector takes
    project: Projector
    streams: frozenset[Stream]  # the log streams it derives from
    expiry: tuple[Expiry, ...] = ()  # traffic-derived rows expire with the connection's data
    sql_views: tuple[str, ...] = ()  # SQL views over its tables (re-pointed at a rebuild)
    depends_on: tuple[str, ...] = field(default=())  # read models its reader also reads
    # rows keyed by job: how a rebuild folds whole jobs at once (else through `project`)
    fold_new_jobs: NewJobsFolder | None = None
