"""`sluice replay` (rebuild of every read model from the log) against live ingest.

Run from the repo root: `python bench/replay.py` (no arguments; embedded PostgreSQL, or the
server at SLUICE_DATABASE_URL: a fresh database is created on it and dropped after).

1. Baseline: ~1,000,000 events of synthetic Celery traffic (bench/traffic.py) appended and
   projected by the live path exactly as bench/log_ingest.py drives it (batches of 500 per
   source, 2 appender processes) into an empty database: live events/s.
2. `rebuild(conn)` over that log, no other ingest running: rebuild events/s (its first pass
   folds the log job by job, in 2 processes for a log this size, as live ingest has 2).
Each timed phase starts after an untimed CHECKPOINT (see bench/log_ingest.py).
Env: SLUICE_BENCH_EVENTS (default 1,000,000; the tasks are events / 4.1).
The last line is {"events", "events_per_s", "ratio_vs_live_ingest"} (events_per_s: rebuild).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent))
import traffic
from log_ingest import APPENDERS, BATCH, sluice_rate
from scratch import scratch_database

from sluice.service import first_pass
from sluice.service.rebuild import rebuild

EVENTS = int(os.environ.get("SLUICE_BENCH_EVENTS", "1000000"))
EVENTS_PER_TASK = 4.1  # bench/traffic.py's mix: 3% retried, 5% failed
READ_MODELS = ["jobs", "job_transitions", "workers", "queues", "queue_samples", "rollups_minute"]


class Phases:
    """Where the rebuild's time goes, seen through its progress callback only: each call
    follows one committed chunk of the first pass (of either process) or page of the
    catch-up; after the last one come the shadow's SET LOGGED, indexes, ANALYZE and the
    swap."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.calls: list[tuple[float, int]] = []  # (when, events done)

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        self.calls.append((now, done))
        if len(self.calls) % 20 == 0 or done >= total:
            elapsed = now - self.started
            print(f"  rebuild: {done:>9,}/{total:,} events, {len(self.calls)} chunks, "
                  f"{done / elapsed:,.0f} events/s", flush=True)

    def report(self, finished: float) -> dict[str, float]:
        """Seconds: to the first chunk committed (shadow made, log counted and sorted, one
        chunk), the remaining chunks and pages, then indexes + swap after the last one."""
        if not self.calls:
            return {"after_last_chunk_s": finished - self.started}
        first, last = self.calls[0][0], self.calls[-1][0]
        gaps = sorted(b[0] - a[0] for a, b in zip(self.calls, self.calls[1:], strict=False))
        out = {"first_chunk_s": first - self.started, "chunks_s": last - first,
               "after_last_chunk_s": finished - last}
        if gaps:
            out["chunk_median_ms"] = 1000 * gaps[len(gaps) // 2]
            out["chunk_max_ms"] = 1000 * gaps[-1]
        return out


def _count(conn: psycopg.Connection, table: str) -> int:
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
                       ).fetchone()
    return int(row[0]) if row else 0


def _checkpoint(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def main() -> None:
    n_tasks = max(1, round(EVENTS / EVENTS_PER_TASK))
    started = time.perf_counter()
    stream = traffic.stream(n_tasks)
    print(f"{len(stream):,} Celery events from {n_tasks:,} tasks "
          f"(generated in {time.perf_counter() - started:.1f} s)", flush=True)
    with scratch_database() as url:
        _checkpoint(url)
        print(f"live ingest: append + project, batches of {BATCH}, {APPENDERS} appender "
              "processes, into an empty database ...", flush=True)
        live = sluice_rate(url, stream, "bench-replay")
        print(f"  live ingest: {live:,.0f} events/s ({len(stream) / live:.1f} s)", flush=True)
        del stream
        _checkpoint(url)
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute("SELECT count(*) FROM events").fetchone()
            logged = row[0] if row else 0
            print(f"rebuild of every read model over the log ({logged:,} events, chunks of "
                  f"{first_pass.CHUNK:,} whole jobs), no other ingest ...", flush=True)
            phases = Phases()
            stats = rebuild(conn, progress=phases)
            finished = time.perf_counter()
            sizes = [(table, _count(conn, table)) for table in READ_MODELS]
    assert stats.events == logged, (stats.events, logged)
    rate = stats.events_per_s
    print(f"  rebuild: {stats.events:,} events in {stats.pages} chunks/pages, "
          f"{stats.seconds:.1f} s, {rate:,.0f} events/s ({', '.join(stats.models)})", flush=True)
    print("  rebuild phases (s): " + ", ".join(
        f"{k} {v:.1f}" for k, v in phases.report(finished).items()), flush=True)
    print("  rebuilt rows: " + ", ".join(f"{name} {n:,}" for name, n in sizes), flush=True)
    print(json.dumps({"events": stats.events, "events_per_s": round(rate),
                      "live_events_per_s": round(live),
                      "ratio_vs_live_ingest": round(rate / live, 3)}))


if __name__ == "__main__":
    main()
