"""`sluice demo` stops in the order events flow (workers, then the agent once it has their
last events, then the server, then PostgreSQL and Redis) and leaves no process behind."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import psutil
import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _listener(port: int) -> int:
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port \
                and conn.pid:
            return int(conn.pid)
    raise AssertionError(f"nothing listens on {port}")


def _online_workers(base: str, key: str) -> int:
    req = urllib.request.Request(f"{base}/api/workers",
                                 headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        items = json.loads(resp.read())["items"]
    return sum(1 for w in items if w["status"] == "online")


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT])
def test_demo_stops_in_order_and_leaves_nothing_running(signum: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="sluice-demo-stop-"))
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    env["SLUICE_DATA_DIR"] = str(root)
    proc = subprocess.Popen(
        [sys.executable, "-m", "sluice.cli", "demo", "--port", str(port), "--duration", "600"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")),
                              daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        deadline = time.monotonic() + 150
        creds = root / "demo" / "demo-credentials.json"
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, "".join(lines)
            time.sleep(1)
            if not creds.exists() or not any("Broker:" in line for line in lines):
                continue
            try:
                if _online_workers(base, json.loads(creds.read_text())["api_key"]) == 2:
                    break
            except OSError:
                continue
        text = "".join(lines)
        before_url = text[:text.index("Dashboard:")].splitlines()
        assert len(before_url) <= 4 and "initdb" not in text, text  # no pgserver chatter
        broker_port = int(re.search(r"Broker: redis://127\.0\.0\.1:(\d+)/",
                                    "".join(lines)).group(1))  # type: ignore[union-attr]
        children = psutil.Process(proc.pid).children(recursive=True)
        top = [c for c in children if c.ppid() == proc.pid]
        roles = {
            "workers": [c.pid for c in top if "celery" in " ".join(c.cmdline())],
            "agent": [c.pid for c in top if "agent" in c.cmdline()],
            "server": [c.pid for c in top if "serve" in c.cmdline()],
            "postgres": [int((root / "pg" / "postmaster.pid").read_text().split()[0])],
            "redis": [_listener(broker_port)],
        }
        assert all(len(pids) == (2 if role == "workers" else 1)
                   for role, pids in roles.items()), roles
        every = {c.pid for c in children} | {p for pids in roles.values() for p in pids}

        proc.send_signal(signum)
        gone_at: dict[int, float] = {}
        start = time.monotonic()
        while len(gone_at) < len(every) and time.monotonic() - start < 90:
            now = time.monotonic()
            gone_at.update({pid: now for pid in every - set(gone_at) if not _alive(pid)})
            time.sleep(0.02)
        assert proc.wait(timeout=60) == 0, "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(5)
        shutil.rmtree(root, ignore_errors=True)

    left = [psutil.Process(p).cmdline() for p in every if _alive(p)]
    assert not left, left
    last = {role: max(gone_at[p] for p in pids) for role, pids in roles.items()}
    first = {role: min(gone_at[p] for p in pids) for role, pids in roles.items()}
    assert last["workers"] <= first["agent"], gone_at
    assert last["agent"] <= first["server"], gone_at
    assert last["server"] <= first["postgres"], gone_at
    assert last["server"] <= first["redis"], gone_at
