"""Jobs (with their state history) and per-minute rollups, set-based over a batch.

Each touched job is re-folded from the set of its events: the copy its row keeps (`fold`,
in fold order) plus the batch's new ones. That makes the row a function of the event set
(any arrival order, any duplicates) without reading the log back.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import msgspec
import psycopg

from sluice.domain.events import JOB_KINDS, Event
from sluice.domain.fold import FoldEvent, JobView, fold_event, fold_ordered, order
from sluice.store.sqlfiles import queries

from ..model import Context
from .row import COPY_TYPES, copy_statement, row_writer

Q = queries(__package__, "projector.sql")
_JSON = msgspec.json.Encoder()
# a row's events, as row.py packs them
_UNPACK = msgspec.msgpack.Decoder(list[FoldEvent])
_UNPACK_KEYED = msgspec.msgpack.Decoder(list[Event])  # rows written before (keyed Events)


def _unpack(packed: bytes) -> list[FoldEvent]:
    try:
        return _UNPACK.decode(packed)
    except msgspec.ValidationError:
        return [fold_event(e) for e in _UNPACK_KEYED.decode(packed)]

# A rollup contribution as stored on the job: [minute, outcome, runtime, name, queue].
Contribution = tuple[int, str, float | None, str, str]


class _Folded(msgspec.Struct, gc=False):
    view: JobView
    ordered: list[FoldEvent]
    old_outcomes: list[Contribution]
    outcomes: list[Contribution]


def _contributions(view: JobView) -> list[Contribution]:
    return [(o.minute, o.outcome, o.runtime, view.name or "", view.queue or "")
            for o in view.outcomes]


def _ids(job_ids: Iterable[str]) -> str:
    """Job ids as one JSON array parameter: a C-speed encode, where psycopg builds a text[]
    in Python, element by element."""
    return _JSON.encode(sorted(job_ids)).decode()


def _fold_all(conn: psycopg.Connection, params: dict[str, str],
              new: dict[str, list[FoldEvent]]
              ) -> list[_Folded]:
    """Take the jobs' rows (deleting them: each is written again, with its new events) and
    fold each job's old and new events. params: connection_id and job_ids (`_ids`)."""
    old: dict[str, tuple[list[Contribution], list[FoldEvent]]] = {
        job_id: ([tuple(c) for c in msgspec.json.decode(outcomes)], _unpack(packed))
        for job_id, outcomes, packed in conn.execute(Q["take_job_folds"], params)
    }
    folded = []
    for job_id in sorted(new):
        old_outcomes, old_events = old.get(job_id, ([], []))
        ranked = order([*old_events, *new[job_id]])
        if not ranked:
            continue
        view = fold_ordered(job_id, ranked)
        folded.append(_Folded(view=view, ordered=[e for _, e in ranked],
                              old_outcomes=old_outcomes, outcomes=_contributions(view)))
    return folded


_COPY_JOBS = copy_statement(Q["copy_jobs"])
_WRITE_JOB_ROWS = row_writer(_Folded)


def _write_jobs(conn: psycopg.Connection, connection_id: str, folded: list[_Folded]) -> None:
    cid = uuid.UUID(connection_id)
    with conn.cursor().copy(_COPY_JOBS) as copy:
        copy.set_types(COPY_TYPES)  # binary: no text parsing, no escaping of the packed folds
        _WRITE_JOB_ROWS(copy.write_row, cid, folded)


def _apply_rollups(conn: psycopg.Connection, connection_id: str, folded: list[_Folded]) -> None:
    """Add each job's new contributions and take back its old ones (exact counts and sums)."""
    delta: dict[tuple[int, str, str, str], list[Any]] = {}
    for f in folded:
        for sign, contribs in ((-1, f.old_outcomes), (1, f.outcomes)):
            for minute, outcome, runtime, name, queue in contribs:
                row = delta.setdefault((minute, name, queue, outcome), [0, 0.0, None])
                row[0] += sign
                row[1] += sign * (runtime or 0.0)
                if sign > 0 and runtime is not None:
                    row[2] = runtime if row[2] is None else max(row[2], runtime)
    changed = {k: r for k, r in delta.items() if r[0] != 0 or r[1] != 0.0 or r[2] is not None}
    if not changed:
        return
    keys = sorted(changed)
    conn.execute(
        Q["upsert_rollups"],
        {
            "connection_id": connection_id,
            "minute": [float(k[0]) for k in keys],
            "name": [k[1] for k in keys],
            "queue": [k[2] for k in keys],
            "outcome": [k[3] for k in keys],
            "count": [changed[k][0] for k in keys],
            "runtime_sum": [changed[k][1] for k in keys],
            "runtime_max": [changed[k][2] for k in keys],
        },
    )
    if any(r[0] < 0 for r in changed.values()):
        minutes = sorted({dt.datetime.fromtimestamp(k[0], dt.UTC) for k in keys})
        conn.execute(Q["delete_empty_rollups"],
                     {"connection_id": connection_id, "minutes": minutes})


def is_job_event(e: Event) -> bool:
    """Whether the jobs projection folds this event."""
    return bool(e.job_id) and e.kind in JOB_KINDS


def project_jobs(conn: psycopg.Connection, connection_id: str, events: Sequence[Event],
                 ctx: Context) -> set[str]:
    """Fold the events into their jobs' rows; answer the jobs left out. One projector per
    job at a time (concurrent appends must not fold a stale copy): with `ctx.wait`, this
    waits for the jobs that other appends hold; without, it leaves those out. Tables the
    caller has alone (`ctx.exclusive`) need no job locks."""
    new: dict[str, list[FoldEvent]] = defaultdict(list)
    for e in events:  # as the row keeps them: converted once, folded and packed as they are
        new[e.job_id or ""].append(fold_event(e))
    params = {"connection_id": connection_id, "job_ids": _ids(new)}
    held: set[str] = set()
    if ctx.exclusive:
        pass
    elif ctx.wait:
        conn.execute(Q["lock_jobs"], params)
    else:
        held = {job_id for (job_id,) in conn.execute(Q["try_lock_jobs"], params)}
        if held:
            for job_id in held:
                del new[job_id]
            params["job_ids"] = _ids(new)
    folded = _fold_all(conn, params, new)
    if folded:
        _write_jobs(conn, connection_id, folded)
        _apply_rollups(conn, connection_id, folded)
    return held


def fold_new_jobs(conn: psycopg.Connection, connection_id: str,
                  jobs: Mapping[str, Sequence[Event]]) -> None:
    """Write the rows of jobs that have none yet, each from all its events (a rebuild's first
    pass): no job locks, no rows to take back, each job folded once."""
    folded = []
    for job_id, events in jobs.items():
        ranked = order(fold_event(e) for e in events)
        if ranked:
            view = fold_ordered(job_id, ranked)
            folded.append(_Folded(view=view, ordered=[e for _, e in ranked], old_outcomes=[],
                                  outcomes=_contributions(view)))
    if folded:
        _write_jobs(conn, connection_id, folded)
        _apply_rollups(conn, connection_id, folded)
