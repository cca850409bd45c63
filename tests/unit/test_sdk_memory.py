"""Never leak: with the API down, 1,000,000 captured Celery events keep memory bounded."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import json, os, sys, time
    from celery import Celery
    import sluice
    from sluice.sdk import capture, stats

    def rss_mb():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    app = Celery("m", broker="memory://", set_as_current=False)
    sluice.init(app=app, api_key="k", connection_id="0b6c3a4e-5555-4000-8000-000000000005",
                endpoint=sys.argv[1], timeout=0.2, shutdown_timeout=0.2)
    emit = capture._capturing_event  # the factory Celery's dispatcher calls
    for i in range(20_000):
        emit("task-received", uuid=f"id-{i}", name="shop.tasks.add", args="(1, 2)",
             kwargs="{}", hostname="w1@h", clock=i, pid=1, utcoffset=0)
    base = rss_mb()
    start = time.perf_counter()
    for i in range(1_000_000):
        emit("task-succeeded", uuid=f"id-{i}", result="3", runtime=0.001,
             hostname="w1@h", clock=i, pid=1, utcoffset=0)
    per_event_us = (time.perf_counter() - start)
    print(json.dumps({"grown_mb": rss_mb() - base, "stats": stats(), "seconds": per_event_us}))
    """
)


def test_one_million_events_with_api_down_stay_bounded() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{s.getsockname()[1]}"  # closed once we leave
    out = subprocess.run([sys.executable, "-c", SCRIPT, endpoint],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    stats = result["stats"]
    assert stats["submitted"] == 1_020_000
    assert stats["buffered"] <= 10_000 + 500  # the buffer, plus one batch in flight
    assert stats["dropped"] >= 1_020_000 - 10_500
    assert result["grown_mb"] < 30, result
    assert result["seconds"] < 30  # ~µs per event: the capture path is O(1)
