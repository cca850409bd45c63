"""SSE fan-out: 1, 10 and 50 subscribers of one connection's event stream while events are
ingested at a steady rate.

    python bench/stream_fanout.py

Starts `sluice serve` (one process) on a fresh database. For each run, a fresh connection
gets N subscribers, each a separate process reading GET /api/events/stream over a raw
socket into memory (no parsing until the run is over: a client at least as fast as curl),
then job events are POSTed to /api/ingest at SLUICE_BENCH_RATE events/s (default 1,000) in
batches every 50 ms for SLUICE_BENCH_SECONDS (default 30). Per event and subscriber:
latency = its arrival at the subscriber minus the moment its batch's 202 came back (both
CLOCK_MONOTONIC, shared by all processes; clamped at 0: the stream can beat the 202).
delivered_ratio = events received / (events acknowledged x subscribers); resets = `reset`
messages received (a subscriber too far behind).
Env: SLUICE_DATABASE_URL (else a private embedded PostgreSQL, removed after),
SLUICE_BENCH_SUBSCRIBERS (default "1,10,50").
Last line: JSON {"subscribers", "delivered_ratio", "p99_ms", "resets"} of the last run.
"""

from __future__ import annotations

import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

RATE = int(os.environ.get("SLUICE_BENCH_RATE", "1000"))
SECONDS = float(os.environ.get("SLUICE_BENCH_SECONDS", "30"))
COUNTS = [int(n) for n in os.environ.get("SLUICE_BENCH_SUBSCRIBERS", "1,10,50").split(",")]
TICK_S = 0.05
DRAIN_S = 5.0  # after the last batch, how long subscribers may still receive
KINDS = ("job.sent", "job.received", "job.started", "job.succeeded")
_ROLE = "SLUICE_BENCH_FANOUT_SUBSCRIBER"


# -- a subscriber process --------------------------------------------------------------------

def subscribe(port: int, key: str, ready: Path, stop: Path, out: Path) -> None:
    """Read the stream into memory until `stop` exists; then write what arrived when."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(f"GET /api/events/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                 f"Authorization: Bearer {key}\r\nAccept: text/event-stream\r\n\r\n".encode())
    chunks: list[bytes] = []
    times: list[float] = []
    head = b""
    while b": connected" not in head:
        data = sock.recv(65536)
        if not data:
            raise SystemExit(f"the stream closed before it opened: {head[:300]!r}")
        head += data
    if not head.startswith(b"HTTP/1.1 200"):
        raise SystemExit(f"the stream answered {head[:200]!r}")
    chunks.append(head)
    times.append(time.monotonic())
    ready.touch()
    sock.settimeout(0.2)
    while not stop.exists():
        try:
            data = sock.recv(1 << 20)
        except TimeoutError:
            continue
        if not data:
            break
        times.append(time.monotonic())
        chunks.append(data)
    sock.close()
    out.write_text(json.dumps(_arrivals(chunks, times)))


_KEY = re.compile(rb'"dedup_key":"([^"]+)"')


def _arrivals(chunks: list[bytes], times: list[float]) -> dict[str, Any]:
    """Each event's arrival: the time of the read that completed its message."""
    body = _Dechunker()
    pending = b""
    arrivals: dict[str, float] = {}
    resets = 0
    for i, (chunk, at) in enumerate(zip(chunks, times, strict=True)):
        if i == 0:
            chunk = chunk.split(b"\r\n\r\n", 1)[1]  # the response head
        pending += body.feed(chunk).replace(b"\r\n", b"\n")  # either line end is SSE
        if b"\n\n" not in pending:
            continue
        *messages, pending = pending.split(b"\n\n")
        for message in messages:
            if b"event: reset" in message:
                resets += 1
                continue
            found = _KEY.search(message)
            if found:
                arrivals.setdefault(found.group(1).decode(), at)
    return {"arrivals": arrivals, "resets": resets}


class _Dechunker:
    """HTTP/1.1 chunked transfer coding, fed as it arrived."""

    def __init__(self) -> None:
        self.raw = b""

    def feed(self, data: bytes) -> bytes:
        raw = self.raw + data
        out = []
        at = 0
        while True:
            line_end = raw.find(b"\r\n", at)
            if line_end < 0:
                break
            size = int(raw[at:line_end].split(b";")[0], 16)
            if len(raw) < line_end + 2 + size + 2:
                break
            out.append(raw[line_end + 2:line_end + 2 + size])
            at = line_end + 2 + size + 2
        self.raw = raw[at:]
        return b"".join(out)


# -- the driver ------------------------------------------------------------------------------

def _batch(n: int, seq: int, run: str) -> list[Any]:
    from sluice.domain.events import Event

    now = time.time()
    out = []
    for i in range(n):
        kind = KINDS[i % 4]
        first = kind == "job.sent"
        out.append(Event(
            kind=kind, timestamp=now + i * 1e-6, job_id=f"fan-{run}-{seq}-{i // 4}", clock=i,
            dedup_key=f"fan-{run}-{seq}-{i}", hostname="producer@b" if first else "worker@b",
            name="bench.task" if first else None, queue="default" if first else None,
            runtime=0.01 if kind == "job.succeeded" else None))
    return out


def _start_server(url: str, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    proc = subprocess.Popen(
        [sys.executable, "-m", "sluice.cli", "serve", "--port", str(port)],
        env={**os.environ, "SLUICE_DATABASE_URL": url},
        stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc, port
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the API server did not start:\n" + log.read_text()[-2000:])


def _run(url: str, port: int, subscribers: int, tmp: Path) -> dict[str, Any]:
    import httpx
    import msgspec
    import psycopg

    from sluice.store import connections, keys

    run = uuid.uuid4().hex[:6]
    with psycopg.connect(url, autocommit=True) as conn:
        cid = connections.create_connection(conn, f"fanout-{run}")
        key = keys.create_key(conn, cid, ["ingest", "read"]).api_key
    stop = tmp / f"stop-{run}"
    procs = []
    for i in range(subscribers):
        env = {**os.environ, _ROLE: json.dumps(
            [port, key, str(tmp / f"ready-{run}-{i}"), str(stop), str(tmp / f"out-{run}-{i}")])}
        procs.append(subprocess.Popen([sys.executable, os.path.abspath(__file__)], env=env))
    deadline = time.monotonic() + 60
    while not all((tmp / f"ready-{run}-{i}").exists() for i in range(subscribers)):
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            raise SystemExit("subscribers did not connect")
        time.sleep(0.05)
    acked: dict[str, float] = {}
    per_tick = max(1, round(RATE * TICK_S))
    started = time.monotonic()
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30.0, headers={
            "Authorization": f"Bearer {key}", "Content-Type": "application/json"}) as http:
        for seq in range(int(SECONDS / TICK_S)):
            delay = started + seq * TICK_S - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            events = _batch(per_tick, seq, run)
            r = http.post("/api/ingest", content=msgspec.json.encode({"events": events}))
            at = time.monotonic()
            if r.status_code != 202:
                raise SystemExit(f"ingest answered {r.status_code}: {r.text[:200]}")
            for e in events:
                acked[e.dedup_key] = at
    elapsed = time.monotonic() - started
    time.sleep(DRAIN_S)
    stop.touch()
    latencies: list[float] = []
    delivered = resets = 0
    for i, p in enumerate(procs):
        p.wait(600)  # (parsing what it read can take a while)
        got = json.loads((tmp / f"out-{run}-{i}").read_text())
        resets += got["resets"]
        for k, at in got["arrivals"].items():
            sent = acked.get(k)
            if sent is not None:
                delivered += 1
                latencies.append(max(0.0, at - sent) * 1000)
    q = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 \
        else [latencies[0] if latencies else float("nan")] * 99
    result = {"subscribers": subscribers,
              "delivered_ratio": round(delivered / (len(acked) * subscribers), 4),
              "p99_ms": round(q[98], 1), "resets": resets}
    print(f"{subscribers} subscribers: ingested {len(acked):,} events in {elapsed:.1f} s "
          f"({len(acked) / elapsed:,.0f}/s), delivered {delivered:,} of "
          f"{len(acked) * subscribers:,}; latency 202 -> arrival p50 {q[49]:.1f} ms, "
          f"p99 {q[98]:.1f} ms, max {max(latencies, default=float('nan')):.1f} ms; "
          f"resets {resets}", flush=True)
    return result


def main() -> None:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import psycopg
    from scratch import scratch_database

    from sluice.store.migrations import migrate

    with scratch_database() as url, tempfile.TemporaryDirectory(prefix="sluice-fan-") as tmp:
        with psycopg.connect(url, autocommit=True) as conn:
            migrate(conn)
        proc, port = _start_server(url, Path(tmp) / "serve.log")
        try:
            result: dict[str, Any] = {}
            for n in COUNTS:
                result = _run(url, port, n, Path(tmp))
        finally:
            proc.terminate()
            try:
                proc.wait(40)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    print(json.dumps(result))


if __name__ == "__main__":
    role = os.environ.get(_ROLE)
    if role:
        port, key, ready, stop, out = json.loads(role)
        subscribe(int(port), key, Path(ready), Path(stop), Path(out))
    else:
        main()
