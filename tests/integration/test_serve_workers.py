"""`sluice serve --workers N` whose master is killed with SIGKILL: its workers notice and
exit (the port is free again), and a new `serve` on the same port starts."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from tests.integration.reads_support import free_port


def _start(url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sluice.cli", "serve", "--port", str(port), "--workers", "2"],
        env={**os.environ, "SLUICE_DATABASE_URL": url},
        stdout=log.open("ab"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("serve did not start:\n" + log.read_text()[-3000:])


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_workers_exit_when_the_master_is_killed_and_a_restart_works(
        fresh_db_url: str, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    master = _start(fresh_db_url, port, log)
    workers = [w for w in psutil.Process(master.pid).children()
               if "spawn_main" in " ".join(w.cmdline())]  # not multiprocessing's tracker
    assert len(workers) >= 2, [w.cmdline() for w in workers]
    second = None
    try:
        os.kill(master.pid, signal.SIGKILL)
        master.wait(10)
        _, alive = psutil.wait_procs(workers, timeout=20)
        assert not alive, f"workers still running after their master died: {alive}"
        assert _port_free(port)
        assert "serve master" in log.read_text()
        second = _start(fresh_db_url, port, log)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    finally:
        for w in workers:
            if w.is_running():
                w.kill()
        if second is not None:
            second.send_signal(signal.SIGTERM)
            try:
                second.wait(40)
            except subprocess.TimeoutExpired:
                second.kill()
