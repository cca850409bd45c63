"""POST /api/ingest over real HTTP to a real `sluice serve`; compare with Flower's fold.

Run from the repo root: `python bench/ingest_http.py` (no arguments). PostgreSQL: a private
embedded one, or the server at SLUICE_DATABASE_URL (a fresh database is created on it and
dropped after). 4 client threads post gzip'd batches of 500 normalized Celery events (the
transport's wire format); every event is durable (appended + projected) before its 202.
Env: SLUICE_BENCH_TASKS (default 25000 tasks, about 105,000 events), SLUICE_BENCH_CLIENTS (4),
SLUICE_BENCH_WORKERS (server processes, default 2).
The last line is {"events_per_s", "p50_ms", "p99_ms", "ratio_vs_flower"}.
"""

from __future__ import annotations

import gzip
import json
import os
import queue
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import msgspec
import psycopg
import urllib3

sys.path.insert(0, str(Path(__file__).resolve().parent))
import traffic
from log_ingest import flower_rate
from scratch import scratch_database

from sluice.domain.celery import normalize
from sluice.domain.events import Event
from sluice.store import connections, keys
from sluice.store.migrations import migrate

BATCH = 500
CLIENTS = int(os.environ.get("SLUICE_BENCH_CLIENTS", "4"))
TASKS = int(os.environ.get("SLUICE_BENCH_TASKS", "25000"))
WORKERS = int(os.environ.get("SLUICE_BENCH_WORKERS", "2"))  # `sluice serve --workers`
_ENC = msgspec.json.Encoder()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bodies(stream: list[dict[str, Any]], cid: str) -> list[tuple[int, bytes]]:
    """(events, gzip'd JSON body) per batch, built before the clock starts."""
    events = []
    for raw in stream:
        event = normalize(raw, cid)
        assert isinstance(event, Event), event
        events.append(_ENC.encode(event))
    out = []
    for i in range(0, len(events), BATCH):
        chunk = events[i:i + BATCH]
        body = b'{"events":[' + b",".join(chunk) + b"]}"
        out.append((len(chunk), gzip.compress(body, compresslevel=1)))
    return out


def _start_server(url: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sluice.cli", "serve", "--port", str(port),
         "--workers", str(WORKERS)],
        env={**os.environ, "SLUICE_DATABASE_URL": url},
        stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    http = urllib3.PoolManager()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("sluice serve exited:\n" + log.read_text())
        try:
            if http.request("GET", base + "/readyz", timeout=1, retries=False).status == 200:
                return proc, base
        except urllib3.exceptions.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("sluice serve did not become ready:\n" + log.read_text())


def _post_all(base: str, api_key: str, bodies: list[tuple[int, bytes]]) -> tuple[
        int, float, list[float]]:
    """(events accepted, seconds, per-batch latencies in ms) with CLIENTS threads."""
    work: queue.Queue[tuple[int, bytes]] = queue.Queue()
    for item in bodies:
        work.put(item)
    latencies: list[float] = []
    accepted = [0]
    lock = threading.Lock()
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json",
               "Content-Encoding": "gzip"}
    errors: list[str] = []
    finished: list[float] = []  # when each client got its last answer

    def client() -> None:
        try:
            post_until_done(urllib3.PoolManager(maxsize=1))
        finally:
            finished.append(time.perf_counter())

    def post_until_done(http: urllib3.PoolManager) -> None:
        while True:
            try:
                _, body = work.get_nowait()
            except queue.Empty:
                return
            t0 = time.perf_counter()
            resp = http.request("POST", base + "/api/ingest", body=body, headers=headers,
                                timeout=60, retries=False)
            ms = (time.perf_counter() - t0) * 1000
            if resp.status != 202:
                errors.append(f"{resp.status} {resp.data[:200]!r}")
                return
            answer = json.loads(resp.data)
            with lock:
                latencies.append(ms)
                accepted[0] += answer["accepted"]

    threads = [threading.Thread(target=client, daemon=True) for _ in range(CLIENTS)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    total = sum(n for n, _ in bodies)
    while any(t.is_alive() for t in threads):
        time.sleep(1.0)  # progress only: the clock stops at the last answer (finished)
        done = accepted[0]
        rate = done / (time.perf_counter() - started)
        print(f"  {done:>7}/{total} events  {rate:,.0f} events/s", flush=True)
    if errors:
        raise SystemExit("ingest failed: " + "; ".join(errors[:3]))
    return accepted[0], max(finished) - started, latencies


def _percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> None:
    stream = traffic.stream(TASKS)
    print(f"{len(stream)} Celery events from {TASKS} tasks, batches of {BATCH}, "
          f"{CLIENTS} clients, {WORKERS} server processes", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="sluice-bench-http-"))
    try:
        with scratch_database() as url:
            ours, p50, p99, theirs = _measure(stream, url, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps({"events_per_s": round(ours), "p50_ms": round(p50, 1),
                      "p99_ms": round(p99, 1), "ratio_vs_flower": round(ours / theirs, 3)}))


def _measure(stream: list[dict[str, Any]], url: str, tmp: Path
             ) -> tuple[float, float, float, float]:
    """(events/s over HTTP, batch p50 ms, batch p99 ms, Flower's events/s)."""
    proc = None
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            migrate(conn)
            cid = connections.create_connection(conn, "bench")
            api_key = keys.create_key(conn, cid, ["ingest"]).api_key
        bodies = _bodies(stream, cid)
        # Flower is timed before and after (the mean), so a load change on a shared machine
        # during the run skews the ratio less.
        print("Flower's in-memory EventsState.event on the same events (before) ...",
              flush=True)
        flower_before = flower_rate(stream)
        print(f"  flower: {flower_before:,.0f} events/s", flush=True)
        proc, base = _start_server(url, tmp / "serve.log")
        print(f"posting to {base}/api/ingest ...", flush=True)
        accepted, elapsed, latencies = _post_all(base, api_key, bodies)
        with psycopg.connect(url, autocommit=True) as conn:
            stored = conn.execute("SELECT count(*) FROM events").fetchone()
            jobs = conn.execute("SELECT count(*) FROM jobs").fetchone()
        assert stored and stored[0] == len(stream) == accepted, (stored, accepted)
        ours = accepted / elapsed
        p50, p99 = _percentile(latencies, 50), _percentile(latencies, 99)
        print(f"  sluice over HTTP: {ours:,.0f} events/s durable, batch p50 {p50:.1f} ms, "
              f"p99 {p99:.1f} ms; {stored[0]} events, {jobs[0] if jobs else 0} jobs stored")
        print("Flower's in-memory EventsState.event on the same events (after) ...", flush=True)
        flower_after = flower_rate(stream)
        theirs = (flower_before + flower_after) / 2
        print(f"  flower: {flower_after:,.0f} events/s; mean {theirs:,.0f} events/s "
              "(in memory, nothing durable)")
        return ours, p50, p99, theirs
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)


if __name__ == "__main__":
    main()
