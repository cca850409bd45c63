"""Read-API query latency over a large job table, loaded through the projection path.

    python bench/query.py            # SLUICE_BENCH_JOBS jobs (default 10,000,000)

Loads synthetic jobs (job.sent + job.succeeded, ~4% job.failed with a traceback) spread over
the last 7 days through the projector (project_batch) in large batches from several loader
processes, with the jobs table's secondary indexes built after the load, then
times the store queries behind GET /api/jobs (no filter, state, state+queue, name substring,
free text), GET /api/jobs/{id} and GET /api/stats/overview, and prints p50/p95 of each plus
EXPLAIN (ANALYZE, BUFFERS) of the slowest list query.

Env: SLUICE_DATABASE_URL (else an embedded PostgreSQL in
SLUICE_DATA_DIR/bench-pg, default .sluice/bench-pg), SLUICE_BENCH_JOBS,
SLUICE_BENCH_LOADERS (processes, default 3), SLUICE_BENCH_DB (reuse/keep a database by name:
the load is skipped when it already holds the jobs). Last line: JSON
{"jobs", "list_p95_ms", "detail_p95_ms", "overview_p95_ms"}.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from sluice.domain.events import Event
from sluice.domain.validate import with_dedup_key
from sluice.store import connections, partitions
from sluice.store.db import data_dir, embedded_url
from sluice.store.migrations import migrate
from sluice.views import registry
from sluice.views.jobs import reader as reads
from sluice.views.jobs import stats
from sluice.views.model import Context
from sluice.views.queues import reader as queues

JOBS = int(os.environ.get("SLUICE_BENCH_JOBS", "10000000"))
LOADERS = int(os.environ.get("SLUICE_BENCH_LOADERS", "3"))
BATCH_JOBS = 2_500  # 5,000 events per append
SPAN_S = 7 * 86_400
NAMES = [f"shop.{m}.{t}" for m in ("orders", "billing", "emails", "search", "reports")
         for t in ("create", "refund", "send_email", "reindex", "render_pdf", "sync",
                   "notify", "cleanup", "import_csv", "charge")]
QUEUES = ["default", "emails", "billing", "reports", "search", "low", "high", "bulk"]
WORKERS = [f"worker{i}@node{i % 5}" for i in range(20)]
EXCEPTIONS = ["TimeoutError('upstream took too long')", "ValueError('bad sku')",
              "ConnectionError('redis reset')", "KeyError('customer_id')"]
RUNS = 60


def _server_url() -> str:
    url = os.environ.get("SLUICE_DATABASE_URL")
    if url:
        return url
    return str(embedded_url(data_dir() / "bench-pg"))


def _db_url(server: str, name: str) -> str:
    return psycopg.conninfo.make_conninfo(server, dbname=name)


def _events(job_ids: list[str], rnd: random.Random, now: float) -> list[Event]:
    out = []
    for jid in job_ids:
        t0 = now - rnd.random() * SPAN_S
        name, queue, worker = rnd.choice(NAMES), rnd.choice(QUEUES), rnd.choice(WORKERS)
        out.append(with_dedup_key(Event(
            kind="job.sent", timestamp=t0, job_id=jid, name=name, queue=queue,
            hostname="producer@web1", clock=1, retries=0, args="(1,)", kwargs="{}")))
        runtime = rnd.expovariate(5.0)
        if rnd.random() < 0.04:
            exc = rnd.choice(EXCEPTIONS)
            out.append(with_dedup_key(Event(
                kind="job.failed", timestamp=t0 + 0.05 + runtime, job_id=jid,
                hostname=worker, clock=2, exception=exc,
                traceback=f"Traceback (most recent call last):\n  File \"x.py\"\n{exc}")))
        else:
            out.append(with_dedup_key(Event(
                kind="job.succeeded", timestamp=t0 + 0.05 + runtime, job_id=jid,
                hostname=worker, clock=2, runtime=runtime, result="None")))
    return out


def _load_part(url: str, cid: str, part: int, count: int, seed: int) -> None:
    rnd = random.Random(seed)
    now = time.time()
    with psycopg.connect(url, autocommit=True) as conn:
        done = 0
        while done < count:
            n = min(BATCH_JOBS, count - done)
            ids = [str(uuid.UUID(int=rnd.getrandbits(128), version=4)) for _ in range(n)]
            with conn.transaction():
                registry.project(conn, cid, _events(ids, rnd, now), Context())
            done += n
            if part == 0 and done % (BATCH_JOBS * 40) == 0:
                print(f"  loader 0: {done:,} / {count:,} jobs", file=sys.stderr, flush=True)


_PARKED = ("CREATE TABLE IF NOT EXISTS bench_parked_indexes (name text PRIMARY KEY, "
           "definition text NOT NULL)")


def _park_indexes(conn: psycopg.Connection) -> None:
    """Drop the jobs table's secondary indexes for the bulk load, keeping their definitions
    in the bench database (a load cut short is resumed, then they are rebuilt)."""
    conn.execute(_PARKED)
    for name, definition in conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'jobs' "
            "AND indexname <> 'jobs_pkey'").fetchall():
        conn.execute("INSERT INTO bench_parked_indexes VALUES (%s, %s) ON CONFLICT DO NOTHING",
                     (name, definition))
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))


def _restore_indexes(conn: psycopg.Connection) -> None:
    conn.execute(_PARKED)
    conn.execute("SET maintenance_work_mem = '1GB'")
    for name, definition in conn.execute(
            "SELECT name, definition FROM bench_parked_indexes ORDER BY name").fetchall():
        started = time.perf_counter()
        conn.execute(definition)
        conn.execute("DELETE FROM bench_parked_indexes WHERE name = %s", (name,))
        print(f"  index {name} built in {time.perf_counter() - started:.0f} s",
              file=sys.stderr, flush=True)


def load(url: str, cid: str, jobs: int) -> float:
    """Load `jobs` jobs with LOADERS processes through the projector (project_batch: the
    fold and the jobs/rollups writes of an append, without the log rows, which no read
    here touches), the secondary indexes parked meanwhile and built after, as for any bulk
    load; returns jobs per second, index builds included."""
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        _park_indexes(conn)
    share = [jobs // LOADERS + (1 if i < jobs % LOADERS else 0) for i in range(LOADERS)]
    procs = [mp.Process(target=_load_part, args=(url, cid, i, n, 1000 + i))
             for i, n in enumerate(share) if n]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise SystemExit(f"a loader failed (exit {p.exitcode})")
    with psycopg.connect(url, autocommit=True) as conn:
        _restore_indexes(conn)
    return jobs / (time.perf_counter() - started)


def _timed(fn: Callable[[], Any], runs: int = RUNS) -> list[float]:
    fn()  # warm the plan and the cache
    out: list[float] = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def _pct(xs: list[float], p: float) -> float:
    return round(statistics.quantiles(xs, n=100, method="inclusive")[int(p) - 1], 2)


def _explain(conn: psycopg.Connection, cid: str, f: reads.JobFilter) -> str:
    """EXPLAIN of the statement list_jobs runs first for this filter."""
    names, params = reads._filters(f, with_state=True)
    params.update(connection_id=cid, limit=51, window=reads.TEXT_WINDOW)
    statement = reads.first_statement(f, names)
    rows = conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, params).fetchall()
    return "\n".join(r[0] for r in rows)


def main() -> None:
    server = _server_url()
    name = os.environ.get("SLUICE_BENCH_DB") or f"sluice_bench_{uuid.uuid4().hex[:8]}"
    keep = bool(os.environ.get("SLUICE_BENCH_DB"))
    with psycopg.connect(server, autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                               (name,)).fetchone()
        if not exists:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = _db_url(server, name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            migrate(conn)
            partitions.ensure_window(conn)
            row = conn.execute("SELECT id FROM connections WHERE name = 'bench'").fetchone()
            cid = str(row[0]) if row else connections.create_connection(conn, "bench")
            have = conn.execute("SELECT count(*) FROM jobs WHERE connection_id = %s",
                                (cid,)).fetchone()
            missing = JOBS - int(have[0] if have else 0)
        if missing > 0:
            print(f"loading {missing:,} jobs with {LOADERS} loaders ...", file=sys.stderr)
            rate = load(url, cid, missing)
            print(f"loaded at {rate:,.0f} jobs/s ({2 * rate:,.0f} events/s)", file=sys.stderr)
        with psycopg.connect(url, autocommit=True) as conn:
            _restore_indexes(conn)  # after a load cut short
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE jobs")
            conn.execute("VACUUM ANALYZE rollups_minute")
            report(conn, cid)
    finally:
        if not keep:
            with psycopg.connect(server, autocommit=True) as admin:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)))


def report(conn: psycopg.Connection, cid: str) -> None:
    jobs_n = conn.execute("SELECT count(*) FROM jobs WHERE connection_id = %s",
                          (cid,)).fetchone()
    total = int(jobs_n[0]) if jobs_n else 0
    ids = [r[0] for r in conn.execute(
        "SELECT job_id FROM jobs TABLESAMPLE SYSTEM (1) WHERE connection_id = %s LIMIT 2000",
        (cid,))]
    rnd = random.Random(7)
    second = reads.list_jobs(conn, cid, reads.JobFilter(), limit=50).next_cursor
    cases: dict[str, Callable[[], reads.JobFilter]] = {
        "list no filter": lambda: reads.JobFilter(),
        "list by state (failed)": lambda: reads.JobFilter(states=["failed"]),
        "list by 2 states": lambda: reads.JobFilter(states=["failed", "retrying"]),
        "list state+queue": lambda: reads.JobFilter(states=["failed"],
                                                    queue=rnd.choice(QUEUES)),
        "list name substring": lambda: reads.JobFilter(name=rnd.choice(
            ["email", "refund", "pdf", "orders.sync"])),
        "list free text": lambda: reads.JobFilter(q=rnd.choice(
            ["timeout", "bad sku", "redis", "customer_id"])),
    }
    results: dict[str, list[float]] = {}
    for label, make in cases.items():
        def page(make: Callable[[], reads.JobFilter] = make) -> reads.JobPage:
            return reads.list_jobs(conn, cid, make(), limit=50)

        results[label] = _timed(page)
    results["list page 2 (cursor)"] = _timed(
        lambda: reads.list_jobs(conn, cid, reads.JobFilter(), limit=50, cursor=second))
    results["detail"] = _timed(lambda: reads.get_job(conn, cid, rnd.choice(ids)), runs=200)
    stats.HOURS.clear()
    t = time.perf_counter()
    stats.overview(conn, cid)  # the closed-hour cache empty
    cold = [(time.perf_counter() - t) * 1000]
    results["overview"] = _timed(lambda: stats.overview(conn, cid))
    extra = {
        "free text, no match": _timed(lambda: reads.list_jobs(
            conn, cid, reads.JobFilter(q="no-such-text"), limit=50), runs=20),
        "facets, no filter": _timed(lambda: reads.job_facets(conn, cid, reads.JobFilter()),
                                    runs=5),
        "queues list": _timed(lambda: queues.list_queues(conn, cid), runs=20),
    }
    print(f"\n{total:,} jobs; p50 / p95 in ms ({RUNS} runs each, detail 200)")
    for label, xs in results.items():
        print(f"  {label:<24} {_pct(xs, 50):>9.2f} {_pct(xs, 95):>9.2f}")
    print(f"  {'overview, cold cache':<24} {cold[0]:>9.2f}   (closed hours re-summed every "
          f"{stats.HOUR_TTL_S:.0f} s / {stats.OLD_HOUR_TTL_S:.0f} s)")
    for label, xs in extra.items():  # informative, outside the targets
        print(f"  {label:<24} {_pct(xs, 50):>9.2f} {_pct(xs, 95):>9.2f}")
    list_labels = [k for k in results if k.startswith("list")]
    slowest = max(list_labels, key=lambda k: _pct(results[k], 95))
    print(f"\nEXPLAIN of the slowest list query ({slowest}):")
    f = {
        "list page 2 (cursor)": reads.JobFilter(),
    }.get(slowest) or cases[slowest]()
    print(_explain(conn, cid, f))
    list_p95 = max(_pct(results[k], 95) for k in list_labels)
    print(json.dumps({"jobs": total, "list_p95_ms": list_p95,
                      "detail_p95_ms": _pct(results["detail"], 95),
                      "overview_p95_ms": _pct(results["overview"], 95)}))


if __name__ == "__main__":
    main()
