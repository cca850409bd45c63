"""Ingest -> SSE latency at a steady event rate.

    python bench/stream_latency.py

Starts the API (`create_app` under uvicorn, a subprocess like `sluice serve`) on a fresh
database, opens one SSE client on GET /api/events/stream and POSTs job events to
/api/ingest at a steady SLUICE_BENCH_RATE events/s (default 2,000) in batches every 50 ms for
SLUICE_BENCH_SECONDS (default 20). Latency per event = its receipt on the SSE stream minus
the moment its batch's 202 came back (clamped at 0: the stream can beat the 202).
Env: SLUICE_DATABASE_URL (else a private embedded PostgreSQL, removed after).
Last line: JSON {"p50_ms", "p99_ms"}.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time

import httpx
import msgspec
import psycopg

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scratch import scratch_database

from sluice.domain.events import Event
from sluice.domain.validate import with_dedup_key
from sluice.store import connections, keys
from sluice.store.migrations import migrate

RATE = int(os.environ.get("SLUICE_BENCH_RATE", "2000"))
SECONDS = float(os.environ.get("SLUICE_BENCH_SECONDS", "20"))
TICK_S = 0.05
KINDS = ("job.sent", "job.received", "job.started", "job.succeeded")


def _batch(n: int, seq: int) -> list[Event]:
    now = time.time()
    out = []
    for i in range(n):
        jid = f"lat-{seq}-{i // 4}"
        kind = KINDS[i % 4]
        first = kind == "job.sent"
        out.append(with_dedup_key(Event(
            kind=kind, timestamp=now + i * 1e-6, job_id=jid, clock=i,
            hostname="producer@b" if first else "worker@b",
            name="bench.task" if first else None, queue="default" if first else None,
            runtime=0.01 if kind == "job.succeeded" else None)))
    return out


def _start_server(url: str) -> tuple[subprocess.Popen[bytes], str]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "sluice.api.app:create_app",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
         "--no-access-log"],
        env={**os.environ, "SLUICE_DATABASE_URL": url},
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/schema/openapi.json", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the API server did not start")


def main() -> None:
    with scratch_database() as url:
        _measure(url)


def _measure(url: str) -> None:
    proc = None
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            migrate(conn)
            cid = connections.create_connection(conn, "bench")
            key = keys.create_key(conn, cid, ["ingest", "read"]).api_key
        proc, base = _start_server(url)
        run(base, {"Authorization": f"Bearer {key}"})
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def run(base: str, headers: dict[str, str]) -> None:
    received: dict[str, float] = {}
    subscribed = threading.Event()
    stop = threading.Event()

    def listen() -> None:
        try:
            with httpx.Client(timeout=httpx.Timeout(30.0)) as http, \
                    http.stream("GET", base + "/api/events/stream", headers=headers) as r:
                for line in r.iter_lines():
                    if line.startswith(": connected"):
                        subscribed.set()
                    elif line.startswith("data: "):
                        received[json.loads(line[6:])["dedup_key"]] = time.perf_counter()
                    if stop.is_set():
                        return
        except httpx.HTTPError:
            if not stop.is_set():
                raise

    reader = threading.Thread(target=listen, daemon=True)
    reader.start()
    if not subscribed.wait(30):
        raise SystemExit("the SSE stream did not open")
    acked: dict[str, float] = {}
    per_tick = max(4, round(RATE * TICK_S / 4) * 4)  # whole jobs (4 events each)
    ticks = int(SECONDS / TICK_S)
    started = time.perf_counter()
    with httpx.Client(base_url=base, headers={**headers, "Content-Type": "application/json"},
                      timeout=30.0) as http:
        for seq in range(ticks):
            due = started + seq * TICK_S
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            events = _batch(per_tick, seq)
            r = http.post("/api/ingest", content=msgspec.json.encode({"events": events}))
            at = time.perf_counter()
            if r.status_code != 202:
                raise SystemExit(f"ingest answered {r.status_code}: {r.text[:200]}")
            for e in events:
                acked[e.dedup_key] = at
    elapsed = time.perf_counter() - started
    deadline = time.monotonic() + 10
    while len(received.keys() & acked.keys()) < len(acked) and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    # an open SSE stream holds uvicorn's graceful shutdown: make the stream send something
    # (one more event) so the reader sees `stop` and disconnects
    with httpx.Client(base_url=base, headers={**headers, "Content-Type": "application/json"},
                      timeout=30.0) as http:
        http.post("/api/ingest", content=msgspec.json.encode({"events": _batch(4, -1)}))
    reader.join(10)
    lat = [max(0.0, received[k] - t) * 1000 for k, t in acked.items() if k in received]
    missing = len(acked) - len(lat)
    q = statistics.quantiles(lat, n=100, method="inclusive")
    print(f"ingested {len(acked):,} events in {elapsed:.1f} s "
          f"({len(acked) / elapsed:,.0f} events/s, target {RATE:,}); "
          f"received {len(lat):,} on SSE, missing {missing}")
    print(f"latency 202 -> SSE receipt: p50 {q[49]:.1f} ms, p90 {q[89]:.1f} ms, "
          f"p99 {q[98]:.1f} ms, max {max(lat):.1f} ms")
    print(json.dumps({"p50_ms": round(q[49], 2), "p99_ms": round(q[98], 2)}))


if __name__ == "__main__":
    main()
