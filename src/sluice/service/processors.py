"""Tracked processors: server-side code that folds each connection's log exactly once and
may decide events of its own (commands, alerts, findings), which go back into the log.

Exactly once: a processor's pages are read after its recorded position (`log.tracking`)
and each page is ONE transaction: its tracking row locked, `handle` writing its output,
the events it decided appended (`service.ingest.append`, a savepoint inside), the new
position recorded. A crash loses only the page in flight (rolled back), which the next run
reads again; a rival runner waits on the tracking row's lock and then reads the position
the first one committed, so no event is handled twice and none is skipped.

One runner per processor across server processes: a session-level advisory lock keyed by
the processor's name, held on a dedicated connection while the runner lives (PostgreSQL
drops it with the connection when the process dies). A process that does not hold it tries
again on its next round. Clock ticks (`Processor.tick`, conditions that arise from time
passing) run only in the holder.

`Runner.run_once` does one round (tests call it); `Runner.start` runs rounds in a daemon
thread, woken by the log's NOTIFY (`log.notify.CHANNEL`) and every `poll_s` regardless.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

import psycopg
from psycopg import sql

from sluice.domain.events import Event, written_by_server
from sluice.domain.validate import check_event, with_dedup_key
from sluice.log import event_log, notify, tracking
from sluice.log.event_log import StoredEvent
from sluice.log.follow import matches
from sluice.store.sqlfiles import queries

from . import ingest

log = logging.getLogger(__name__)

Q = queries(__package__, "processors.sql")

PAGE: Final = 500  # events per page (one transaction) unless a processor says otherwise
POLL_S: Final = 5.0  # a round at least this often, notified or not
RETRY_S: Final = 2.0  # pause after a failed round (database down, ...)
_WAIT_SLICE_S: Final = 0.5  # how long the loop waits before checking it was told to stop


class Processor:
    """A tracked processor: subclass it, give it a unique `name` (its tracking rows and its
    advisory lock are keyed by it; never rename one that ran, it would start over).

    - `handle(conn, connection_id, events)`: the page's events (those of `kinds`), inside
      the page's transaction: write output with `conn` (nothing else; no commit) and return
      the events it decides, which are appended to the connection's log in the same
      transaction. They must be of a server kind (`domain.events.SERVER_NAMESPACES`) and
      pass `check_event(..., from_server=True)`; give each a dedup key derived from its
      inputs (e.g. the position it answers) so that a repeat is a duplicate. A processor
      that does not filter its `kinds` also receives the events it appended.
    - `kinds`: kind prefixes it wants (empty: all); the others are skipped, the position
      still advances past them.
    - `tick(conn, now)`: every `interval_s` seconds (None: never), in the lock holder only,
      in a transaction; returns (connection id, event) pairs to append, checked alike.
    """

    name: str = ""
    kinds: tuple[str, ...] = ()
    page_size: int = PAGE
    interval_s: float | None = None

    def handle(self, conn: psycopg.Connection, connection_id: str,
               events: list[StoredEvent]) -> list[Event]:
        return []

    def tick(self, conn: psycopg.Connection, now: float) -> list[tuple[str, Event]]:
        return []


def lock_key(name: str) -> int:
    """The advisory lock key of a processor: a stable signed 64-bit hash of its name (the
    same in every process and release, unlike Python's hash())."""
    digest = hashlib.blake2b(f"sluice.processor:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@dataclass
class Report:
    """What one round (or one drain) did."""

    pages: int = 0  # pages committed
    handled: int = 0  # events passed to handle
    appended: int = 0  # decided events stored (duplicates not counted)
    dropped: int = 0  # decided events refused by the checks
    ticks: int = 0  # ticks committed
    conflicts: int = 0  # pages rolled back because another runner got there first
    errors: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)  # processors this runner holds

    def add(self, other: Report) -> None:
        self.pages += other.pages
        self.handled += other.handled
        self.appended += other.appended
        self.dropped += other.dropped
        self.ticks += other.ticks
        self.conflicts += other.conflicts
        self.errors.extend(other.errors)


def checked(events: Iterable[Event], processor: str, now: float | None = None
            ) -> tuple[list[Event], int]:
    """(the decided events fit to store, with dedup keys, how many were dropped). A bad one
    is logged and dropped; it does not hold up the rest."""
    now = time.time() if now is None else now
    good: list[Event] = []
    dropped = 0
    for event in events:
        if not isinstance(event, Event):
            log.error("processor %s decided a non-event %.300r: dropped", processor, event)
            dropped += 1
            continue
        reason: str | None = None
        if not written_by_server(event.kind):
            reason = f"{event.kind[:60]!r} is not a kind the server writes"
        elif (rejection := check_event(event, now, from_server=True)) is not None:
            reason = f"{rejection.reason} ({rejection.field})"
        if reason is not None:
            log.error("processor %s decided an invalid event, dropped: %s: %.300r",
                      processor, reason, event)
            dropped += 1
            continue
        good.append(with_dedup_key(event))
    return good, dropped


def _append(conn: psycopg.Connection, connection_id: str, events: list[Event],
            processor: str, report: Report) -> None:
    good, dropped = checked(events, processor)
    report.dropped += dropped
    if not good:
        return
    result = ingest.append(conn, connection_id, good)
    report.appended += result.accepted
    for item in result.rejected:  # e.g. past the connection's daily quota
        report.dropped += 1
        log.error("processor %s: decided event %.300r not stored: %s", processor,
                  good[item.index], item.reason)


def _page(conn: psycopg.Connection, processor: Processor, connection_id: str,
          report: Report) -> bool:
    """One page in one transaction; False when there was nothing after the position."""
    name = processor.name
    keys = {"connection_id": connection_id, "processor": name}
    with conn.transaction():
        conn.execute(Q["claim_position"], keys)
        row = conn.execute(Q["lock_position"], keys).fetchone()
        after = int(row[0]) if row else 0
        page = event_log.read_from(conn, after, processor.page_size,
                                   connection_id=connection_id)
        if not page:
            return False
        wanted = [e for e in page if matches(e.event.kind, list(processor.kinds))]
        decided = processor.handle(conn, connection_id, wanted) if wanted else []
        page_report = Report()
        _append(conn, connection_id, list(decided or []), name, page_report)
        tracking.record(conn, connection_id, name, page[-1].position)
    page_report.pages, page_report.handled = 1, len(wanted)
    report.add(page_report)
    return True


def process_pending(conn: psycopg.Connection, processor: Processor, connection_id: str,
                    *, max_pages: int | None = None, report: Report | None = None) -> Report:
    """Fold a connection's log into the processor from its recorded position to the end
    (or `max_pages`), one transaction per page. Safe to run concurrently with a rival (the
    tracking row's lock and `tracking.record` keep it exactly once); takes no advisory lock.
    `conn` must be in autocommit mode, outside a transaction. `report` (default: a new one)
    counts the pages as they commit, so it holds them even when a later page raises."""
    report = Report() if report is None else report
    pages = report.pages
    while max_pages is None or report.pages - pages < max_pages:
        try:
            if not _page(conn, processor, connection_id, report):
                break
        except tracking.AlreadyTracked:  # rolled back: read again from where it is now
            report.conflicts += 1
    return report


def run_tick(conn: psycopg.Connection, processor: Processor, now: float) -> Report:
    """The processor's tick and the events it decides, in one transaction."""
    report = Report()
    with conn.transaction():
        by_connection: dict[str, list[Event]] = defaultdict(list)
        for connection_id, event in processor.tick(conn, now) or []:
            by_connection[str(connection_id)].append(event)
        for connection_id, events in by_connection.items():
            _append(conn, connection_id, events, processor.name, report)
    report.ticks = 1
    return report


class Runner:
    """Runs processors for this process: the ones whose advisory lock it holds.

    Not thread-safe: use `run_once` from one thread, or `start`/`stop` (its own thread),
    not both at once. `close` (or `stop`) releases the locks."""

    def __init__(self, conninfo: str, processors: Sequence[Processor], *,
                 poll_s: float = POLL_S, retry_s: float = RETRY_S,
                 clock: Callable[[], float] = time.time) -> None:
        names = [p.name for p in processors]
        if not all(names) or len(set(names)) != len(names):
            raise ValueError(f"processors need unique, non-empty names: {names}")
        self.conninfo = conninfo
        self.processors = list(processors)
        self.poll_s = poll_s
        self.retry_s = retry_s
        self.clock = clock
        self._lock_conn: psycopg.Connection | None = None
        self._work_conn: psycopg.Connection | None = None
        self._held: set[str] = set()
        self._next_tick: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # connections

    def _connect(self) -> psycopg.Connection:
        return psycopg.connect(self.conninfo, autocommit=True,
                               application_name="sluice processors")

    def _work(self) -> psycopg.Connection:
        conn = self._work_conn
        if conn is None or conn.closed or conn.broken:
            if conn is not None:
                conn.close()
            conn = self._work_conn = self._connect()
        return conn

    def _lock(self) -> psycopg.Connection:
        """The dedicated connection the advisory locks live on. If it was lost, so were the
        locks: forget them (another process may hold them by now)."""
        conn = self._lock_conn
        if conn is not None and not conn.closed and not conn.broken:
            try:
                conn.execute("SELECT 1")
                return conn
            except psycopg.Error:
                log.warning("processor lock connection lost; locks released")
        if conn is not None:
            conn.close()
        self._held.clear()
        self._next_tick.clear()
        conn = self._lock_conn = self._connect()
        return conn

    # locks

    def held(self) -> list[str]:
        return sorted(self._held)

    def _acquire(self) -> None:
        conn = self._lock()
        for p in self.processors:
            if p.name in self._held:
                continue
            row = conn.execute(Q["try_lock"], {"key": lock_key(p.name)}).fetchone()
            if row and row[0]:
                log.info("processor %s: this process runs it now", p.name)
                self._held.add(p.name)

    def release(self) -> None:
        """Give up the locks (and the connections): another process may take over."""
        for conn in (self._lock_conn, self._work_conn):
            if conn is not None:
                conn.close()
        self._lock_conn = self._work_conn = None
        self._held.clear()
        self._next_tick.clear()

    close = release

    # rounds

    def run_once(self, connections: Iterable[str] | None = None) -> Report:
        """One round: take the locks it can, fold what is pending for the held processors
        (in `connections`, default every connection with a log) and run the ticks that are
        due. A processor that fails on a connection is logged (in the report's errors) and
        tried again next round; the others go on."""
        report = Report()
        self._acquire()
        held = [p for p in self.processors if p.name in self._held]
        report.held = [p.name for p in held]
        if not held:
            return report
        conn = self._work()
        cids = (list(connections) if connections is not None
                else event_log.logged_connections(conn))
        for p in held:
            for cid in cids:
                try:
                    process_pending(self._work(), p, cid, report=report)
                except Exception as exc:
                    log.exception("processor %s failed on connection %s", p.name, cid)
                    report.errors.append(f"{p.name} {cid}: {exc!r}")
            self._tick_if_due(p, report)
        return report

    def _tick_if_due(self, p: Processor, report: Report) -> None:
        if p.interval_s is None:
            return
        now = self.clock()
        if now < self._next_tick.get(p.name, now):
            return
        try:
            report.add(run_tick(self._work(), p, now))
            self._next_tick[p.name] = now + p.interval_s
        except Exception as exc:
            log.exception("processor %s: tick failed", p.name)
            report.errors.append(f"{p.name} tick: {exc!r}")
            self._next_tick[p.name] = now + min(p.interval_s, self.retry_s)

    def _wait_s(self) -> float:
        """Until the next round is due: the poll, or sooner a held processor's tick."""
        wait = self.poll_s
        now = self.clock()
        for p in self.processors:
            due = self._next_tick.get(p.name)
            if p.name in self._held and due is not None:
                wait = min(wait, max(0.0, due - now))
        return wait

    # the thread

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="sluice-processors",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        listener: psycopg.Connection | None = None
        notified: set[str] | None = None  # None: a full round (every connection)
        last_full = 0.0
        try:
            while not self._stop.is_set():
                try:
                    if listener is None or listener.closed or listener.broken:
                        listener = self._listen()
                        notified = None  # missed notifications: look everywhere
                    if time.monotonic() - last_full >= self.poll_s:
                        notified = None  # a full round at least every poll_s
                    if notified is None:
                        last_full = time.monotonic()
                    report = self.run_once(notified)
                    if report.errors:
                        self._stop.wait(self.retry_s)
                    notified = self._wait(listener)
                except Exception:
                    log.exception("processor runner round failed; retrying in %ss",
                                  self.retry_s)
                    if listener is not None:
                        listener.close()
                        listener = None
                    self._stop.wait(self.retry_s)
        finally:
            if listener is not None:
                listener.close()
            self.release()

    def _listen(self) -> psycopg.Connection:
        conn = self._connect()
        conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(notify.CHANNEL)))
        return conn

    def _wait(self, listener: psycopg.Connection) -> set[str] | None:
        """Wait for the log's notifications (or the poll, or a due tick, or stop): the
        connections notified, None for a full round."""
        deadline = time.monotonic() + self._wait_s()
        cids: set[str] = set()
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            for n in listener.notifies(timeout=min(left, _WAIT_SLICE_S), stop_after=1):
                cids.add(notify.parse(n.payload)[0])
            if cids:
                # gather what else arrives meanwhile, then go
                for n in listener.notifies(timeout=0):
                    cids.add(notify.parse(n.payload)[0])
                return cids
        return cids

