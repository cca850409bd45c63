"""Where the database is: SLUICE_DATABASE_URL, else an embedded PostgreSQL (pgserver)."""

from __future__ import annotations

import logging
import os
import threading
import warnings
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
_embedded: dict[Path, Any] = {}
_lock = threading.Lock()


def data_dir() -> Path:
    """SLUICE_DATA_DIR, else ./.sluice (created on demand)."""
    path = Path(os.environ.get("SLUICE_DATA_DIR") or Path.cwd() / ".sluice").resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def embedded_url(directory: Path | None = None, *, delete_on_exit: bool = False) -> str:
    """Start (once per process) a private PostgreSQL under the data dir and return its URL.
    It stops when the process exits (and its files go too with `delete_on_exit`)."""
    pgdata = (directory or data_dir() / "pg").resolve()
    with _lock:
        server = _embedded.get(pgdata)
        if server is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # platformdirs' XDG_RUNTIME_DIR notice
                import pgserver.postgres_server

                pgdata.mkdir(parents=True, exist_ok=True)
                log.info("starting embedded PostgreSQL in %s", pgdata)
                server = pgserver.postgres_server.get_server(
                    pgdata, cleanup_mode="delete" if delete_on_exit else "stop")
            _embedded[pgdata] = server
        return str(server.get_uri())


def stop_embedded(directory: Path) -> None:
    """Stop now, not at exit, the embedded server this process started in `directory` (and
    delete its files if it was started with `delete_on_exit`): for callers that remove the
    directory themselves, which must not happen under a running server."""
    with _lock:
        server = _embedded.pop(directory.resolve(), None)
    if server is not None:
        server.cleanup()


def database_url() -> str:
    return os.environ.get("SLUICE_DATABASE_URL") or embedded_url()
