"""The `sluice` command as a user runs it, in subprocesses on embedded PostgreSQL servers of
these tests alone: one data directory whatever the working directory, the database named on
stderr (stdout stays parseable), and `serve` stopping its PostgreSQL on SIGTERM and SIGINT
with no process left behind."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    env.update(extra)
    return env


def _sluice(*argv: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "sluice.cli", *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_gone(pids: set[int], timeout: float) -> set[int]:
    deadline = time.monotonic() + timeout
    left = {p for p in pids if not _gone(p)}
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = {p for p in left if not _gone(p)}
    return left


@pytest.fixture(scope="module")
def root() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="sluice-cli-"))  # not under pytest's rotating tmp
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.slow
def test_one_database_from_any_directory_and_it_is_named(root: Path) -> None:
    home = root / "home"
    env = _env(XDG_DATA_HOME=str(home / "data"), HOME=str(home))
    expected = f"sluice: database: embedded PostgreSQL in {home / 'data' / 'sluice' / 'pg'}"
    one, two = root / "one", root / "two"
    one.mkdir()
    two.mkdir()

    created = _sluice("connections", "create", "myapp", "--json", cwd=one, env=env)
    cid = json.loads(created.stdout)["connection_id"]  # stdout is the JSON alone
    assert expected in created.stderr

    listed = _sluice("connections", "list", "--json", cwd=two, env=env)
    assert [c["id"] for c in json.loads(listed.stdout)] == [cid]
    assert expected in listed.stderr
    assert not (one / ".sluice").exists() and not (two / ".sluice").exists()

    other = root / "other"
    for argv, extra in ((("--data-dir", str(other), "connections", "list", "--json"), {}),
                        (("connections", "list", "--json"), {"SLUICE_DATA_DIR": str(other)})):
        done = _sluice(*argv, cwd=one, env={**env, **extra})
        assert json.loads(done.stdout) == []
        assert f"sluice: database: embedded PostgreSQL in {other / 'pg'}" in done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_serve_stops_its_embedded_postgres(root: Path, signum: int) -> None:
    data = root / "serve"
    port = _free_port()
    log = (root / f"serve-{signum}.log").open("w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sluice.cli", "serve", "--port", str(port)],
        env=_env(SLUICE_DATA_DIR=str(data)), stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, Path(log.name).read_text()
            assert time.monotonic() < deadline, Path(log.name).read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        postmaster = int((data / "pg" / "postmaster.pid").read_text().split()[0])
        started = {postmaster, *(c.pid for c in psutil.Process(proc.pid).children(
            recursive=True))}
        assert psutil.pid_exists(postmaster)

        proc.send_signal(signum)
        assert proc.wait(timeout=60) == 0, Path(log.name).read_text()
        left = _wait_gone(started, 15)
        assert not left, [psutil.Process(p).cmdline() for p in left]
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    text = Path(log.name).read_text()
    assert f"sluice: database: embedded PostgreSQL in {data / 'pg'}" in text


@pytest.mark.slow
def test_quiet_unless_verbose(root: Path) -> None:
    """initdb's and pg_ctl's output (about 50 lines) shows only with --verbose."""
    quiet = _sluice("--data-dir", str(root / "quiet"), "migrate", cwd=root, env=_env())
    text = quiet.stdout + quiet.stderr
    assert "initdb" not in text and "pg_ctl" not in text, text
    assert len(text.splitlines()) <= 3, text  # the database used, and what was applied

    loud = _sluice("migrate", "--verbose", "--data-dir", str(root / "loud"), cwd=root,
                   env=_env())
    assert "initdb" in loud.stderr and "pg_ctl" in loud.stderr
