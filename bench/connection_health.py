"""How long the connection health report (GET /api/connection/health, `sluice doctor`)
takes on a busy connection: its queries are bounded (the newest 20,000 events of the window
and index probes), so the figure must not grow with the log.

    python bench/connection_health.py

Loads SLUICE_BENCH_EVENTS events (default 600,000: jobs sent, received, started and
succeeded by 20 workers that also heartbeat, plus as many events of a second connection)
through the ingest conductor, so every event falls in the report's 15-minute window; then
times `connection_health.report` RUNS times. Env: SLUICE_DATABASE_URL (else an embedded
PostgreSQL in SLUICE_DATA_DIR/bench-pg). Last line: JSON {"events", "report_p50_ms",
"report_p95_ms", "sampled"}.
"""

from __future__ import annotations

import json
import os
import statistics
import time
import uuid

import psycopg
from psycopg import sql

from sluice.domain.events import Event
from sluice.domain.validate import with_dedup_key
from sluice.service import connection_health, ingest
from sluice.store import connections, partitions
from sluice.store.db import data_dir, embedded_url
from sluice.store.migrations import migrate

EVENTS = int(os.environ.get("SLUICE_BENCH_EVENTS", "600000"))
BATCH = 5_000
RUNS = 20
WORKERS = [f"worker{i}@node{i % 5}" for i in range(20)]


def _server_url() -> str:
    return os.environ.get("SLUICE_DATABASE_URL") or str(embedded_url(data_dir() / "bench-pg"))


def _traffic(n: int, tag: str, now: float) -> list[Event]:
    out: list[Event] = []
    i = 0
    while len(out) < n:
        t = now - 3600 + 3600 * len(out) / n
        worker = WORKERS[i % len(WORKERS)]
        job = f"{tag}-{i}"
        out += [
            Event(kind="job.sent", timestamp=t, job_id=job, hostname="web1@app", queue="q",
                  name="shop.pay", clock=4 * i, source="sdk"),
            Event(kind="job.received", timestamp=t + 0.01, job_id=job, hostname=worker,
                  clock=4 * i + 1, source="sdk"),
            Event(kind="job.started", timestamp=t + 0.02, job_id=job, hostname=worker,
                  clock=4 * i + 2, source="sdk"),
            Event(kind="job.succeeded", timestamp=t + 0.3, job_id=job, hostname=worker,
                  runtime=0.28, clock=4 * i + 3, source="sdk"),
        ]
        if i % 10 == 0:
            out.append(Event(kind="worker.heartbeat", timestamp=t, hostname=worker,
                             processed=i // len(WORKERS), active=1, freq=2.0, clock=4 * i,
                             source="agent"))
        i += 1
    return [with_dedup_key(e) for e in out[:n]]


def main() -> None:
    server = _server_url()
    name = f"sluice_bench_health_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = psycopg.conninfo.make_conninfo(server, dbname=name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            migrate(conn)
            partitions.ensure_window(conn)
            cid = connections.create_connection(conn, "busy")
            other = connections.create_connection(conn, "neighbour")
            now = time.time()
            started = time.perf_counter()
            for tag, connection in (("a", cid), ("b", other)):
                events = _traffic(EVENTS // 2, tag, now)
                for k in range(0, len(events), BATCH):
                    ingest.append(conn, connection, events[k:k + BATCH])
                print(f"loaded {connection}: {len(events)} events "
                      f"({time.perf_counter() - started:.0f} s)", flush=True)
            conn.execute("ANALYZE")
            times = []
            report = connection_health.report(conn, cid)
            for _ in range(RUNS):
                t0 = time.perf_counter()
                report = connection_health.report(conn, cid)
                times.append((time.perf_counter() - t0) * 1000)
            print(f"findings: {[f.code for f in report.findings]}, looked at {report.events} "
                  f"events (capped: {report.capped})")
            times.sort()
            print(json.dumps({
                "events": EVENTS, "report_p50_ms": round(statistics.median(times), 1),
                "report_p95_ms": round(times[int(0.95 * (len(times) - 1))], 1),
                "sampled": report.events}))
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))


if __name__ == "__main__":
    main()
