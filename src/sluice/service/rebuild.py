"""Rebuild read models from the log while ingest goes on (`sluice replay`).

The chosen read models are built into shadow tables of their own (schema
`sluice_rebuild`, unlogged, with only their primary keys). First the log as it is when the
rebuild starts is folded job by job (`first_pass`: each job once, in chunks that commit
with their progress, in a process per shard for a large log); then a tracked follower takes
the log from there page by page, in position order, each page's projection and its
tracking position committing together. So a rebuild killed at any point resumes where it
stopped, each event folded once. Live ingest meanwhile projects into the live tables as
usual. Once caught up, the shadow is made durable and gets the live tables' indexes; then
one short transaction locks the live tables (appends that project into them wait; others go
on), folds the last events, moves the shadow in place of the live tables and drops these.

No lock is held per job or for the log (the shadow is the rebuild's alone), and each chunk
or page is its own transaction: it works at any log size.
"""

from __future__ import annotations

import itertools
import logging
import queue
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from operator import attrgetter
from typing import Final

import msgspec
import psycopg
from psycopg import sql

from sluice.domain.events import stream_of
from sluice.log import event_log, tracking
from sluice.store.sqlfiles import queries
from sluice.views import registry
from sluice.views.model import Context, ReadModel

from . import first_pass, shadow

Q = queries(__package__, "rebuild.sql")
log = logging.getLogger(__name__)
SHADOW: Final = shadow.SCHEMA
RETIRED: Final = "sluice_retired"
PROCESSOR: Final = shadow.PROCESSOR
PAGE: Final = 5_000  # events per transaction
_LOCK_ID: Final = 0x51_1CE_0003  # one rebuild at a time
_SWAP_TRIES: Final = 20

Progress = Callable[[int, int], None]  # (events done, events in all)


class RebuildStats(msgspec.Struct):
    events: int
    pages: int
    seconds: float
    models: list[str]
    resumed: bool = False

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


class RebuildBusy(Exception):
    """Another rebuild is running on this database."""


def _q(statement: str, **slots: sql.Composable) -> sql.Composed:
    return sql.SQL(Q[statement]).format(**slots)


_shadow = shadow.table


def _tables(models: Sequence[ReadModel]) -> list[str]:
    return [t for m in models for t in m.tables]


def _prepare(conn: psycopg.Connection, models: Sequence[ReadModel]) -> bool:
    """The shadow schema for these models: resumed if a rebuild of the same models left one,
    else made anew. True when resumed."""
    names = [m.name for m in models]
    schema = sql.Identifier(SHADOW)
    exists = conn.execute(Q["schema_exists"], {"schema": SHADOW}).fetchone()
    if exists and exists[0]:
        row = conn.execute(_q("plan", schema=schema)).fetchone()
        if row is not None and list(row[0]) == names:
            return True
        conn.execute(_q("drop_schema", schema=schema))
    with conn.transaction():
        conn.execute(_q("create_schema", schema=schema))
        conn.execute(_q("create_plan", schema=schema))
        conn.execute(_q("insert_plan", schema=schema), {"models": names})
        conn.execute(_q("create_tracking", schema=schema))
        first_pass.create_progress(conn)
        for table in _tables(models):
            conn.execute(_q("create_shadow", shadow=_shadow(table),
                            live=sql.Identifier("public", table)))
            keys = conn.execute(Q["primary_key"], {"table": f"public.{table}"}).fetchall()
            for name, definition in keys:
                conn.execute(_q("add_constraint", table=_shadow(table), name=sql.Identifier(name),
                                definition=sql.SQL(definition)))
    return False


def _catch_up(conn: psycopg.Connection, connection_id: str, models: Sequence[ReadModel],
              on_page: Callable[[int], None]) -> int:
    """Fold the connection's log after its tracked position into the shadow, a page per
    transaction; return the events read."""
    table = _shadow("tracking")
    streams = frozenset(s for m in models for s in m.streams)
    read = 0
    while True:
        after = tracking.position(conn, connection_id, PROCESSOR, table)
        page = event_log.read_from(conn, after, PAGE, connection_id=connection_id)
        if not page:
            return read
        mine = [s for s in page if stream_of(s.event.kind) in streams]
        with conn.transaction():
            # append by append, as live ingest projected them: rollups sum floats, and
            # only the same sums in the same order give the same bits
            for _, group in itertools.groupby(mine, key=attrgetter("batch")):
                batch = list(group)
                registry.project(conn, connection_id, [s.event for s in batch],
                                 Context(received_at=[s.ingested_at for s in batch],
                                         exclusive=True), models)
            tracking.record(conn, connection_id, PROCESSOR, page[-1].position, table)
        read += len(page)
        on_page(len(page))
        if len(page) < PAGE:
            return read


def _catch_up_all(conn: psycopg.Connection, models: Sequence[ReadModel],
                  on_page: Callable[[int], None]) -> int:
    return sum(_catch_up(conn, cid, models, on_page)
               for cid in event_log.logged_connections(conn))


def _finish_shadow(conn: psycopg.Connection, models: Sequence[ReadModel]) -> None:
    """The shadow made durable (logged), given the live tables' other indexes, analyzed."""
    indexes: list[str] = []
    for table in _tables(models):
        # logged first: the rewrite that makes a table logged rebuilds its indexes too
        conn.execute(_q("set_logged", table=_shadow(table)))
        for _name, definition in conn.execute(Q["secondary_indexes"],
                                              {"table": f"public.{table}"}).fetchall():
            # the live index's statement, on the shadow table (same name, other schema)
            text = re.sub(rf" ON (public\.)?{re.escape(table)} ", f" ON {SHADOW}.{table} ",
                          str(definition), count=1)
            indexes.append(re.sub(r"^CREATE (UNIQUE )?INDEX ", r"CREATE \1INDEX IF NOT EXISTS ",
                                  text))
    _two_at_a_time(conn, indexes)
    for table in _tables(models):  # after the indexes: expression indexes get statistics too
        conn.execute(_q("analyze", table=_shadow(table)))


def _two_at_a_time(conn: psycopg.Connection, statements: Sequence[str]) -> None:
    """Run the statements over `conn` and a second connection at once (index builds on one
    table may: each takes a share lock)."""
    pending: queue.SimpleQueue[str] = queue.SimpleQueue()
    for statement in statements:
        pending.put(statement)

    def drain(on: psycopg.Connection) -> None:
        while True:
            try:
                statement = pending.get_nowait()
            except queue.Empty:
                return
            on.execute(statement)

    if len(statements) < 2:
        drain(conn)
        return
    with psycopg.connect(shadow.conninfo_of(conn), autocommit=True) as other, \
            ThreadPoolExecutor(1) as pool:
        helper = pool.submit(drain, other)
        drain(conn)
        helper.result()


def _swap(conn: psycopg.Connection, models: Sequence[ReadModel],
          on_page: Callable[[int], None]) -> None:
    """One short transaction: lock the live tables, fold what came since, move the shadow in
    their place. Retries while the live tables are busy."""
    tables = _tables(models)
    views = [v for m in models for v in m.sql_views]
    for attempt in range(_SWAP_TRIES):
        _catch_up_all(conn, models, on_page)  # as close as possible before locking
        try:
            with conn.transaction():
                conn.execute(Q["swap_timeout"])
                conn.execute(_q("lock_live", tables=sql.SQL(", ").join(
                    sql.Identifier("public", t) for t in tables)))
                # Locked: no append can project into these tables until commit, and each
                # append projects before it inserts, so what the log holds now is all.
                _catch_up_all(conn, models, on_page)
                conn.execute(Q["live_names"])
                definitions = {v: conn.execute(Q["view_definition"], {"view": v}).fetchone()
                               for v in views}
                conn.execute(_q("create_schema", schema=sql.Identifier(RETIRED)))
                for table in tables:
                    conn.execute(_q("move_table", table=sql.Identifier("public", table),
                                    schema=sql.Identifier(RETIRED)))
                    conn.execute(_q("move_table", table=_shadow(table),
                                    schema=sql.Identifier("public")))
                for view, row in definitions.items():
                    assert row is not None and row[0], f"view {view} has no definition"
                    conn.execute(_q("replace_view", view=sql.Identifier("public", view),
                                    definition=sql.SQL(row[0])))
                conn.execute(_q("drop_schema", schema=sql.Identifier(RETIRED)))
                conn.execute(_q("drop_schema", schema=sql.Identifier(SHADOW)))
            return
        except (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected):
            log.info("rebuild: live tables busy, swap attempt %d again", attempt + 1)
            time.sleep(0.2)
    raise TimeoutError("the live tables stayed busy; the shadow is kept: run again to finish")


def rebuild(conn: psycopg.Connection, names: Sequence[str] | None = None,
            progress: Progress | None = None) -> RebuildStats:
    """Rebuild the read models of these names (all when None) from the log, ingest going on.
    `conn` must be in autocommit mode; its search_path is set for the run."""
    models = registry.named(names)
    started = time.perf_counter()
    got = conn.execute(Q["try_lock"], {"id": _LOCK_ID}).fetchone()
    if not got or not got[0]:
        raise RebuildBusy("another rebuild is running on this database")
    done = pages = 0
    try:
        resumed = _prepare(conn, models)
        table = _shadow("tracking")
        left = {cid: event_log.count(conn, cid, tracking.position(conn, cid, PROCESSOR, table))
                for cid in event_log.logged_connections(conn)}
        # less what a first pass that stopped before its end folded
        total = sum(left.values()) - first_pass.events_done(conn)
        shadow.enter(conn)

        def on_page(n: int) -> None:
            nonlocal done, pages
            done += n
            pages += 1
            if progress is not None:
                progress(done, max(total, done))

        if first_pass.applies(models):
            for cid, events in left.items():
                first_pass.run(conn, cid, events, models, on_page)
        _catch_up_all(conn, models, on_page)
        _finish_shadow(conn, models)
        _swap(conn, models, on_page)
    finally:
        shadow.leave(conn)
        conn.execute(Q["unlock"], {"id": _LOCK_ID})
    return RebuildStats(done, pages, time.perf_counter() - started, [m.name for m in models],
                        resumed)
