"""A rebuild's first pass: the log as it is when the rebuild starts, folded job by job into
the empty shadow tables.

Read in (job, position) order (one sort in the server), each job comes whole: a model that
folds whole jobs (`ReadModel.fold_new_jobs`) folds each once and writes its rows with no
lookups; the others get the events through their `project`, which folds any order alike.
Chunks of whole jobs commit with the shard's progress, so a killed pass resumes after its
last chunk, each event folded once. A large log is split into shards by job (a hash of its
id), each folded by a process of its own. Once every shard is done, the position the pass
read up to is tracked and the rebuild follows the log from there, page by page.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
import os
import queue
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Final

import psycopg
from psycopg import sql

from sluice.domain.events import Event, stream_of
from sluice.log import event_log, tracking
from sluice.store.sqlfiles import queries
from sluice.views import registry
from sluice.views.model import Context, ReadModel

from . import shadow

Q = queries(__package__, "first_pass.sql")
CHUNK: Final = 20_000  # events per transaction (whole jobs)
SHARDS: Final = 2  # processes for a large log
SHARDED_FROM: Final = 100_000  # events: below, one process (starting one costs more)
_FETCH: Final = 5_000  # rows per round trip of the sorted log
SLICE: Final = 200_000  # positions of the log copied per statement
_SHARD_LOCK_ID: Final = 0x51_1CE_0010  # + shard: a worker process's shard

OnChunk = Callable[[int], None]  # events read, after each chunk's commit
# a first-pass event: its sort key (job, position), when it was ingested, the event
_Keyed = tuple[str, int, dt.datetime, Event]


def applies(models: Sequence[ReadModel]) -> bool:
    """Whether a first pass pays: some model folds whole jobs."""
    return any(m.fold_new_jobs is not None for m in models)


def create_progress(conn: psycopg.Connection) -> None:
    conn.execute(shadow.statement(Q["create_progress"]))


def events_done(conn: psycopg.Connection) -> int:
    """Events read by first passes so far (of shards not yet tracked as done)."""
    row = conn.execute(shadow.statement(Q["events_done"])).fetchone()
    return int(row[0]) if row else 0


def run(conn: psycopg.Connection, connection_id: str, logged: int,
        models: Sequence[ReadModel], on_chunk: OnChunk) -> int:
    """The first pass of a connection's log of `logged` events (or the rest of it, after a
    kill), then its position tracked; nothing once tracked. Returns the events read."""
    if tracking.position(conn, connection_id, shadow.PROCESSOR, shadow.TRACKING):
        return 0
    params = {"connection_id": connection_id}
    rows = conn.execute(shadow.statement(Q["progress"]), params).fetchall()
    if rows:
        shards, upto = rows[0][1], rows[0][2]
    else:
        upto = event_log.last_position(conn, connection_id)
        if not upto:
            return 0
        shards = SHARDS if logged >= SHARDED_FROM else 1
        conn.execute(shadow.statement(Q["start"]), {**params, "shards": shards, "upto": upto})
    read = _run_shards(conn, connection_id, shards, models, on_chunk)
    with conn.transaction():
        tracking.record(conn, connection_id, shadow.PROCESSOR, upto, shadow.TRACKING)
    drop_copies(conn, shards)
    return read


def _run_shards(conn: psycopg.Connection, connection_id: str, shards: int,
                models: Sequence[ReadModel], on_chunk: OnChunk) -> int:
    """Shard 0 here, the others each in a worker process; progress as chunks commit."""
    conninfo = shadow.conninfo_of(conn)
    if shards == 1:
        return _shard(conn, conninfo, connection_id, 0, models, on_chunk)
    context = mp.get_context("spawn")
    reports: mp.Queue[int | str | None] = context.Queue()
    workers = [context.Process(target=_worker, daemon=True, args=(
        conninfo, connection_id, shard, [m.name for m in models], reports, os.getpid()))
        for shard in range(1, shards)]
    read = 0
    running = len(workers)
    errors: list[str] = []

    def drain(wait: float | None) -> None:
        nonlocal read, running
        while running:
            try:
                report = reports.get(timeout=wait) if wait else reports.get_nowait()
            except queue.Empty:
                return
            if isinstance(report, int):
                read += report
                on_chunk(report)
            else:
                running -= 1
                if report is not None:
                    errors.append(report)

    def mine(n: int) -> None:
        on_chunk(n)
        drain(None)
        if errors:  # stop here too, rather than fold a shard whose pass will not count
            raise RuntimeError(f"rebuild: first-pass worker failed: {errors[0]}")

    for worker in workers:
        worker.start()
    try:
        read += _shard(conn, conninfo, connection_id, 0, models, mine)
        while running and not errors:
            drain(1.0)
            if running and not any(w.is_alive() for w in workers):
                drain(None)  # the last reports of workers that just ended
                if running:
                    errors.append("a first-pass worker ended without reporting")
    finally:
        for worker in workers:
            if worker.is_alive() and (errors or running):
                worker.terminate()
            worker.join()
    if errors:
        raise RuntimeError(f"rebuild: first-pass worker failed: {errors[0]}")
    return read


def _worker(conninfo: str, connection_id: str, shard: int, names: list[str],
            reports: mp.Queue[int | str | None], parent: int) -> None:
    """A worker process: one shard, reporting each chunk; stops if its parent is gone."""
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(Q["lock_shard"], {"id": _SHARD_LOCK_ID + shard})
            shadow.enter(conn)
            _shard(conn, conninfo, connection_id, shard, registry.named(names), reports.put,
                   alive=lambda: os.getppid() == parent)
        reports.put(None)
    except _Orphaned:
        reports.cancel_join_thread()  # no one reads the reports: exit without flushing them
    except Exception as exc:  # reported to the parent, which raises it
        reports.put(f"shard {shard}: {exc!r}")


class _Orphaned(Exception):
    """The rebuild that started this worker is gone."""


def _copy_of(shard: int) -> sql.Identifier:
    return shadow.table(f"first_pass_log_{shard}")


def drop_copies(conn: psycopg.Connection, shards: int) -> None:
    for shard in range(shards):
        conn.execute(shadow.statement(Q["drop_copy"], copy=_copy_of(shard)))


def _copy(conn: psycopg.Connection, shard: int, params: dict[str, object], upto: int
          ) -> None:
    """The shard's part of the log up to `upto`, into its copy (made anew), a slice of
    positions per statement."""
    copy = _copy_of(shard)
    conn.execute(shadow.statement(Q["drop_copy"], copy=copy))
    conn.execute(shadow.statement(Q["create_copy"], copy=copy))
    first = conn.execute(Q["first_position"], params).fetchone()
    for after in range(int(first[0]) - 1 if first and first[0] else 0, upto, SLICE):
        conn.execute(shadow.statement(Q["copy_slice"], copy=copy),
                     {**params, "after": after, "until": min(after + SLICE, upto)})
    conn.execute(shadow.statement(Q["copied"]), params)


def _shard(conn: psycopg.Connection, conninfo: str, connection_id: str, shard: int,
           models: Sequence[ReadModel], on_chunk: OnChunk,
           alive: Callable[[], bool] = lambda: True) -> int:
    """Fold one shard of the connection's first pass, from where it stopped: its copy of
    the log is read, sorted, over a connection of its own (its transaction keeps the cursor
    open) while each chunk commits on `conn`."""
    params: dict[str, object] = {"connection_id": connection_id, "shard": shard}
    row = next(r for r in conn.execute(shadow.statement(Q["progress"]), params).fetchall()
               if r[0] == shard)
    _, shards, upto, job, position, copied = row
    params["shards"] = shards
    if not copied:
        _copy(conn, shard, params, upto)
    streams = frozenset(s for m in models for s in m.streams)
    read = 0
    chunk: list[_Keyed] = []

    def commit() -> None:
        nonlocal read
        if not alive():
            raise _Orphaned
        last_job, last_position = chunk[-1][0], chunk[-1][1]
        with conn.transaction():
            _fold(conn, connection_id, [k for k in chunk if stream_of(k[3].kind) in streams],
                  models)
            conn.execute(shadow.statement(Q["advance"]), {
                **params, "job": last_job, "position": last_position, "events": len(chunk)})
        read += len(chunk)
        on_chunk(len(chunk))
        chunk.clear()

    resumed = bool(job or position)
    by_job = shadow.statement(Q["by_job"], copy=_copy_of(shard),
                              after=sql.SQL(Q["after"] if resumed else ""))
    with psycopg.connect(conninfo) as reader, reader.cursor("sluice_rebuild_log") as cursor:
        cursor.execute(by_job, {"job": job, "position": position} if resumed else None)
        while rows := cursor.fetchmany(_FETCH):
            for key, pos, ingested_at, payload, *columns in rows:
                # a chunk ends between jobs (events of no job may be split anywhere)
                if len(chunk) >= CHUNK and (key != chunk[-1][0] or not key):
                    commit()
                chunk.append((key, pos, ingested_at,
                              event_log.event_of(payload, connection_id, *columns)))
    if chunk:
        commit()
    return read


def _fold(conn: psycopg.Connection, connection_id: str, chunk: Sequence[_Keyed],
          models: Sequence[ReadModel]) -> None:
    """Whole jobs to the models that take them so, the other events through `project`."""
    others = []
    for model in models:
        if model.fold_new_jobs is None:
            others.append(model)
            continue
        jobs: dict[str, list[Event]] = defaultdict(list)
        folds = model.folds
        for job, _, _, e in chunk:
            if folds(e):
                jobs[job].append(e)
        if jobs:
            model.fold_new_jobs(conn, connection_id, jobs)
    if others:
        registry.project(conn, connection_id, [k[3] for k in chunk],
                         Context(received_at=[k[2] for k in chunk], exclusive=True), others)
