"""Append + project synthetic Celery traffic in batches of 500; compare with Flower's fold.

Events are batched per source (the producer's task-sent, each worker's own events), as the
SDK and the agent send them, and appended by 2 processes at once, as by 2 API processes.

Run from the repo root: `python bench/log_ingest.py` (embedded PostgreSQL, or the server at
SLUICE_DATABASE_URL: a fresh database is created on it and dropped after).
Env: SLUICE_BENCH_TASKS (default 20000 tasks, about 85,000 events).
"""

from __future__ import annotations

import copy
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import traffic
from scratch import scratch_database

from sluice.domain.celery import normalize
from sluice.domain.events import Event
from sluice.store import connections, event_log, partitions
from sluice.store.migrations import migrate

BATCH = 500
APPENDERS = int(os.environ.get("SLUICE_BENCH_APPENDERS", "2"))  # like 2 API worker processes


def flower_rate(stream: list[dict]) -> float:
    from flower.events import EventsState

    state = EventsState()
    # Celery's State mutates the dicts it is given; its receiver adds local_received
    copies = copy.deepcopy(stream)
    for raw in copies:
        raw["local_received"] = raw["timestamp"]
    started = time.perf_counter()
    for raw in copies:
        state.event(raw)
    return len(copies) / (time.perf_counter() - started)


def _appender(url: str, cid: str, batches: list[list[dict]], start: float) -> int:
    """One API-worker-like appender: normalize, append + project each batch; events stored."""
    stored = 0
    with psycopg.connect(url, autocommit=True) as conn:
        while time.time() < start:  # all appenders start together
            time.sleep(0.001)
        for n, raw_batch in enumerate(batches):
            events: list[Event] = []
            for raw in raw_batch:
                ev = normalize(raw, cid)
                assert isinstance(ev, Event), ev
                events.append(ev)
            result = event_log.append(conn, cid, events)
            stored += result.accepted
            if n % 20 == 0:
                print(f"  appender {os.getpid()}: batch {n + 1}/{len(batches)}", flush=True)
    return stored


def source_batches(stream: list[dict]) -> list[list[dict]]:
    """Batches as senders make them: each source (the producer, each worker's SDK) batches
    its own events in order; the batches of all sources then arrive interleaved."""
    by_source: dict[str, list[dict]] = {}
    for raw in stream:
        source = "producer" if raw["type"] == "task-sent" else raw["hostname"]
        by_source.setdefault(source, []).append(raw)
    per_source = [[events[i : i + BATCH] for i in range(0, len(events), BATCH)]
                  for events in by_source.values()]
    interleaved = []
    for k in range(max(len(b) for b in per_source)):
        interleaved.extend(b[k] for b in per_source if k < len(b))
    return interleaved


def sluice_rate(url: str, stream: list[dict]) -> float:
    with psycopg.connect(url, autocommit=True) as conn:
        migrate(conn)
        partitions.ensure_window(conn)
        cid = connections.create_connection(conn, "bench")
    batches = source_batches(stream)
    # Batch i goes to appender i % N: batches of the producer and of the workers that share
    # jobs are appended concurrently, as by several API processes.
    shares = [batches[k::APPENDERS] for k in range(APPENDERS)]
    start = time.time() + 1.0
    with ProcessPoolExecutor(APPENDERS, mp_context=mp.get_context("spawn")) as pool:
        futures = [pool.submit(_appender, url, cid, share, start) for share in shares]
        stored = sum(f.result() for f in futures)
    elapsed = time.time() - start
    with psycopg.connect(url, autocommit=True) as conn:
        jobs = conn.execute("SELECT count(*) FROM jobs").fetchone()
        print(f"  sluice: {stored} events stored, {jobs[0] if jobs else 0} jobs in the read model")
    assert stored == len(stream), (stored, len(stream))
    return len(stream) / elapsed


def main() -> None:
    n = int(os.environ.get("SLUICE_BENCH_TASKS", "20000"))
    stream = traffic.stream(n)
    print(f"{len(stream)} Celery events from {n} tasks (batches of {BATCH})", flush=True)
    with scratch_database(Path(tempfile.mkdtemp(prefix="sluice-bench-")) / "pg") as url:
        print(f"durable append + projection into PostgreSQL, {APPENDERS} appenders ...",
              flush=True)
        ours = sluice_rate(url, stream)
        print(f"  sluice: {ours:,.0f} events/s")
        print("Flower's in-memory EventsState.event on the same events ...", flush=True)
        theirs = flower_rate(stream)
        print(f"  flower: {theirs:,.0f} events/s")
    print(json.dumps({"events_per_s": round(ours), "flower_events_per_s": round(theirs),
                      "ratio_vs_flower": round(ours / theirs, 3)}))


if __name__ == "__main__":
    main()
