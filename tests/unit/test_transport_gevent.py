"""Under gevent or eventlet monkey-patching the sender runs in a real OS thread and never
stalls the hub."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

from sluice.transport.testserver import CaptureServer, Reply

PATCH = {
    "gevent": "from gevent import monkey; monkey.patch_all()\n"
              "import gevent; sleep, spawn = gevent.sleep, gevent.spawn\n",
    "eventlet": "import eventlet; eventlet.monkey_patch()\n"
                "sleep, spawn = eventlet.sleep, eventlet.spawn\n",
}

SCRIPT = textwrap.dedent(
    """
    import json, os, sys, time
    from sluice.domain.events import Event
    from sluice.transport import Transport

    t = Transport(sys.argv[1], "sk_test", "0b6c3a4e-1111-4000-8000-000000000001",
                  max_buffer=50_000, batch_size=2000, flush_interval=0.5, timeout=2.0)
    threads_before = len(os.listdir("/proc/self/task"))
    t.start()
    threads_after = len(os.listdir("/proc/self/task"))
    gaps = []

    def ticker():
        last = time.monotonic()
        end = last + 2.0
        while last < end:
            sleep(0.005)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    g = spawn(ticker)
    big = "x" * 2000  # makes encoding and gzip of each batch real work
    for i in range(20):
        for j in range(500):
            t.submit(Event(kind="job.sent", timestamp=1795546900.0 + j, job_id=f"{i}-{j}",
                           dedup_key=f"key-{i:04d}-{j:04d}", traceback=big))
        sleep(0.04)
    g.wait() if hasattr(g, "wait") else g.join()
    ok = t.flush(20)
    print(json.dumps({"ok": ok, "max_gap": max(gaps), "stats": t.stats(),
                      "os_threads_added": threads_after - threads_before}))
    """
)


@pytest.fixture
def slow_server() -> Iterator[CaptureServer]:
    srv = CaptureServer(default=Reply(202, delay=0.5)).start()  # a slow API
    yield srv
    srv.stop()


@pytest.mark.parametrize("lib", ["gevent", "eventlet"])
def test_sender_does_not_block_the_hub(slow_server: CaptureServer, lib: str) -> None:
    pytest.importorskip(lib)
    out = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", PATCH[lib] + SCRIPT, slow_server.url],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["os_threads_added"] == 1  # a real thread, not a greenlet
    assert result["ok"] and result["stats"]["sent"] == 10_000
    # The hub kept ticking every 5 ms while batches were encoded, gzipped and POSTed
    # to an API taking 500 ms per request (a greenlet sender would show 500 ms gaps).
    assert result["max_gap"] < 0.25, result
