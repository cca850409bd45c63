"""Embedded servers: tuned for ingest, and stoppable (files deleted) before the process exits."""

from __future__ import annotations

from pathlib import Path

import psutil
import psycopg
import pytest

from sluice.store.db import EMBEDDED_SETTINGS, embedded_url, stop_embedded


def _gone(pid: int) -> bool:
    try:  # the postmaster is this process's child: it may linger as a zombie until reaped
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_stop_embedded_stops_and_deletes_now(tmp_path: Path) -> None:
    directory = tmp_path / "pg"
    url = embedded_url(directory, delete_on_exit=True)
    with psycopg.connect(url) as conn:
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert pid is not None and directory.is_dir()
    postmaster = int((directory / "postmaster.pid").read_text().split()[0])
    stop_embedded(directory)
    assert not directory.exists()
    assert _gone(postmaster)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2)
    stop_embedded(directory)  # a second stop is a no-op


def test_embedded_server_is_tuned_for_ingest_and_keeps_it(tmp_path: Path) -> None:
    directory = tmp_path / "pg"
    for last in (False, True):  # stopped, then started again on the same data directory
        url = embedded_url(directory, delete_on_exit=last)
        with psycopg.connect(url) as conn:
            settings = {name: conn.execute(
                "SELECT current_setting(%s)", (name,)).fetchone() for name in EMBEDDED_SETTINGS}
        assert settings == {name: (value,) for name, value in EMBEDDED_SETTINGS.items()}
        stop_embedded(directory)
        if not last:  # persisted in the data directory, for every later start
            auto = (directory / "postgresql.auto.conf").read_text()
            assert all(f"{name} = '{value}'" in auto for name, value in EMBEDDED_SETTINGS.items())
