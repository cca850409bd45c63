"""Processors for the runner's tests, and the child process of the kill -9 test:
`python -m tests.integration.processors_support URL` runs the slow counting processor to
the end of the log (unless killed first)."""

from __future__ import annotations

import sys
import time

import psycopg
from psycopg import sql

from sluice.domain.events import COMMAND_RETRY, WORKER_HEARTBEAT, Event
from sluice.domain.validate import with_dedup_key
from sluice.log.event_log import StoredEvent
from sluice.service import ingest
from sluice.service.processors import Processor, Runner

TABLE = "processed"


def create_table(conn: psycopg.Connection, table: str = TABLE) -> None:
    """The output table of a counting processor: deliberately no unique constraint, so a
    position handled twice shows as two rows."""
    conn.execute(sql.SQL(
        "CREATE TABLE IF NOT EXISTS {} (connection_id uuid NOT NULL, position bigint NOT NULL,"
        " runner text NOT NULL)").format(sql.Identifier(table)))


def heartbeats(n: int, hostname: str = "w1@host", start: int = 0) -> list[Event]:
    now = time.time() - 60
    return [with_dedup_key(Event(kind=WORKER_HEARTBEAT, hostname=hostname,
                                 timestamp=now + i * 1e-3, clock=i, freq=2.0, active=0,
                                 processed=i))
            for i in range(start, start + n)]


def append_heartbeats(conn: psycopg.Connection, connection_id: str, n: int,
                      chunk: int = 5000) -> None:
    for start in range(0, n, chunk):
        result = ingest.append(conn, connection_id,
                               heartbeats(min(chunk, n - start), start=start))
        assert result.accepted == min(chunk, n - start), result


class Counting(Processor):
    """One row per event it is handed, tagged with who handled it."""

    def __init__(self, name: str = "counting", *, table: str = TABLE, page_size: int = 100,
                 sleep_s: float = 0.0, runner: str = "main",
                 kinds: tuple[str, ...] = ()) -> None:
        self.name = name
        self.table = table
        self.page_size = page_size
        self.sleep_s = sleep_s
        self.runner = runner
        self.kinds = kinds

    def handle(self, conn: psycopg.Connection, connection_id: str,
               events: list[StoredEvent]) -> list[Event]:
        conn.execute(sql.SQL(
            "INSERT INTO {} (connection_id, position, runner) "
            "SELECT %s, unnest(%s::bigint[]), %s").format(sql.Identifier(self.table)),
            (connection_id, [e.position for e in events], self.runner))
        if self.sleep_s:
            time.sleep(self.sleep_s)  # slow: a kill lands inside a page's transaction
        return []


class Commanding(Counting):
    """Counts its inputs (heartbeats only) and decides a retry for every `every`-th one,
    keyed by the position it answers (a re-run decides the same keys: duplicates)."""

    def __init__(self, name: str = "commanding", *, every: int = 10, bad: bool = False,
                 page_size: int = 100) -> None:
        super().__init__(name, kinds=("worker.",), page_size=page_size)
        self.every = every
        self.bad = bad

    def handle(self, conn: psycopg.Connection, connection_id: str,
               events: list[StoredEvent]) -> list[Event]:
        super().handle(conn, connection_id, events)
        out = [Event(kind=COMMAND_RETRY, job_id=f"job-{e.position}", timestamp=time.time(),
                     dedup_key=f"retry-{e.position:08d}")
               for e in events if e.position % self.every == 0]
        if self.bad and out:
            out += [Event(kind=COMMAND_RETRY, job_id="x", timestamp=0.0,
                          dedup_key=f"bad-ts-{events[0].position:08d}"),
                    Event(kind=WORKER_HEARTBEAT, hostname="forged@host", timestamp=time.time(),
                          dedup_key=f"forged-{events[0].position:08d}")]
        return out


def main(url: str) -> None:
    runner = Runner(url, [Counting(sleep_s=0.01, runner="child")])
    while True:  # until the log is done (the parent kills it long before)
        report = runner.run_once()
        print(report, flush=True)
        if report.held and not report.pages:
            return
        time.sleep(0.05)


if __name__ == "__main__":
    main(sys.argv[1])
