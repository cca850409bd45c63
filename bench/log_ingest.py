"""Append + project synthetic Celery traffic in batches of 500; compare with Flower's fold.

Events are batched per source (the producer's task-sent, each worker's own events), as the
SDK and the agent send them, and appended by 2 processes at once, as by 2 API processes.

Run from the repo root: `python bench/log_ingest.py` (embedded PostgreSQL, or the server at
SLUICE_DATABASE_URL: a fresh database is created on it and dropped after).
After an untimed warm-up round, both sides run ROUNDS times, alternating (Sluice with fresh
events as a new connection each round, so its tables grow), and the medians are compared:
this VM's speed drifts by half. Each Sluice round starts after an untimed checkpoint, as on a
server that has run a while: at this rate one checkpoints every half minute (max_wal_size),
and WAL is then written into recycled segments. Without it, the log's WAL would grow into
new files all run long (no checkpoint falls within a round), and on this VM every new page
of file cache costs ~2 ms per MB the first time (guest memory the host has not backed yet):
the third round would measure that, not the ingest path.
Env: SLUICE_BENCH_TASKS (default 20000 tasks, about 82,000 events), SLUICE_BENCH_ROUNDS (3),
SLUICE_BENCH_APPENDERS (2).
"""

from __future__ import annotations

import copy
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import traffic
from scratch import scratch_database

from sluice.domain.celery import normalize
from sluice.domain.events import Event
from sluice.service import ingest
from sluice.store import connections, partitions
from sluice.store.migrations import migrate

BATCH = 500
APPENDERS = int(os.environ.get("SLUICE_BENCH_APPENDERS", "2"))  # like 2 API worker processes
ROUNDS = int(os.environ.get("SLUICE_BENCH_ROUNDS", "3"))  # this VM is noisy: medians
Raw = dict[str, Any]  # a Celery event as a worker sends it


def flower_rate(stream: list[Raw]) -> float:
    """Flower's fold, in a fresh process of its own, as Sluice's appenders are: in this one,
    the bench's own objects would slow Flower's garbage collections (by 4-16% measured)."""
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(_flower_fold, stream).result()


def _flower_fold(stream: list[Raw]) -> float:
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


def _appender(url: str, cid: str, batches: list[list[Raw]], start: float
              ) -> tuple[int, float]:
    """One API-worker-like appender: normalize, append + project each batch. Returns the
    events stored and when the last append returned (its process's teardown is not ingest)."""
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
            result = ingest.append(conn, cid, events)
            stored += result.accepted
            if n % 20 == 0:
                print(f"  appender {os.getpid()}: batch {n + 1}/{len(batches)}", flush=True)
        done = time.time()
    return stored, done


def source_batches(stream: list[Raw]) -> list[list[Raw]]:
    """Batches as senders make them: each source (the producer, each worker's SDK) batches
    its own events in order; the batches of all sources then arrive interleaved."""
    by_source: dict[str, list[Raw]] = {}
    for raw in stream:
        source = "producer" if raw["type"] == "task-sent" else raw["hostname"]
        by_source.setdefault(source, []).append(raw)
    per_source = [[events[i : i + BATCH] for i in range(0, len(events), BATCH)]
                  for events in by_source.values()]
    interleaved: list[list[Raw]] = []
    for k in range(max(len(b) for b in per_source)):
        interleaved.extend(b[k] for b in per_source if k < len(b))
    return interleaved


def sluice_rate(url: str, stream: list[Raw], name: str) -> float:
    with psycopg.connect(url, autocommit=True) as conn:
        migrate(conn)
        partitions.ensure_window(conn)
        cid = connections.create_connection(conn, name)
    batches = source_batches(stream)
    # Batch i goes to appender i % N: batches of the producer and of the workers that share
    # jobs are appended concurrently, as by several API processes.
    shares = [batches[k::APPENDERS] for k in range(APPENDERS)]
    start = time.time() + 1.0
    with ProcessPoolExecutor(APPENDERS, mp_context=mp.get_context("spawn")) as pool:
        futures = [pool.submit(_appender, url, cid, share, start) for share in shares]
        results = [f.result() for f in futures]
    stored = sum(n for n, _ in results)
    elapsed = max(done for _, done in results) - start
    with psycopg.connect(url, autocommit=True) as conn:
        jobs = conn.execute("SELECT count(*) FROM jobs WHERE connection_id = %s",
                            (cid,)).fetchone()
        print(f"  sluice: {stored} events stored, {jobs[0] if jobs else 0} jobs in the read model")
    assert stored == len(stream), (stored, len(stream))
    return len(stream) / elapsed


def main() -> None:
    n = int(os.environ.get("SLUICE_BENCH_TASKS", "20000"))
    stream = traffic.stream(n)
    print(f"{len(stream)} Celery events from {n} tasks (batches of {BATCH}); "
          f"{ROUNDS} rounds, each Sluice then Flower; medians compared", flush=True)
    ours: list[float] = []
    theirs: list[float] = []
    with scratch_database() as url:
        print("warm-up: one untimed round ...", flush=True)
        sluice_rate(url, traffic.stream(n, seed=3), "bench-warm-up")
        for k in range(ROUNDS):
            events = stream if k == 0 else traffic.stream(n, seed=7 + k)
            # untimed: a server that has been running writes WAL into segments recycled at
            # its last checkpoint, where a fresh one creates (zero-fills) each
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("CHECKPOINT")
            # each round writes as a new connection into the same, growing tables
            print(f"round {k + 1}: durable append + projection into PostgreSQL, "
                  f"{APPENDERS} appenders (after a checkpoint) ...", flush=True)
            ours.append(sluice_rate(url, events, f"bench-{k}"))
            print(f"  sluice: {ours[-1]:,.0f} events/s")
            print(f"round {k + 1}: Flower's in-memory EventsState.event on the same events ...",
                  flush=True)
            theirs.append(flower_rate(events))
            print(f"  flower: {theirs[-1]:,.0f} events/s")
    mine, flower = statistics.median(ours), statistics.median(theirs)
    print(json.dumps({"events_per_s": round(mine), "flower_events_per_s": round(flower),
                      "ratio_vs_flower": round(mine / flower, 3)}))


if __name__ == "__main__":
    main()
