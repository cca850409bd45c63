"""Where the database is: SLUICE_DATABASE_URL, else an embedded PostgreSQL (pgserver)."""

from __future__ import annotations

import logging
import os
import threading
import warnings
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from .sqlfiles import queries

log = logging.getLogger(__name__)
Q = queries(__package__, "admin.sql")
_embedded: dict[Path, Any] = {}
_lock = threading.Lock()

# The embedded server's WAL settings, for an ingest-heavy log (all take effect on reload).
# PostgreSQL's defaults (min 80MB, max 1GB, 5 min) checkpoint every few seconds at full
# ingest speed, and each checkpoint makes the next touch of every page log a whole page;
# between checkpoints, segments kept for reuse are renamed instead of created (zero-filled).
# Costs at most max_wal_size of disk; crash recovery replays at most that much.
EMBEDDED_SETTINGS: dict[str, str] = {
    "min_wal_size": "1GB",
    "max_wal_size": "4GB",
    "checkpoint_timeout": "15min",
    "wal_compression": "pglz",  # whole-page images after a checkpoint, at little CPU
}


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
            _tune(str(server.get_uri()))
            _embedded[pgdata] = server
        return str(server.get_uri())


def _tune(url: str) -> None:
    """Apply EMBEDDED_SETTINGS where they differ (ALTER SYSTEM persists them in the data
    directory, so later starts find them applied)."""
    with psycopg.connect(url, autocommit=True) as conn:
        current: dict[str, str] = dict(conn.execute(
            Q["settings"], {"names": list(EMBEDDED_SETTINGS)}).fetchall())
        changed = False
        for name, value in EMBEDDED_SETTINGS.items():
            if current.get(name) != value:
                conn.execute(sql.SQL(Q["alter_system"]).format(
                    name=sql.Identifier(name), value=sql.Literal(value)))
                changed = True
        if changed:
            conn.execute(Q["reload_conf"])


def stop_embedded(directory: Path) -> None:
    """Stop now, not at exit, the embedded server this process started in `directory` (and
    delete its files if it was started with `delete_on_exit`): for callers that remove the
    directory themselves, which must not happen under a running server."""
    with _lock:
        server = _embedded.pop(directory.resolve(), None)
    if server is not None:
        server.cleanup()


Database = tuple[str, int, str]  # host, port, database name


def database_of(conn: psycopg.Connection) -> Database:
    """The database a connection is on (host, port, name), to key per-database caches:
    about 1 µs, where building `conn.info.dsn` takes ~80 (once per append, that was 1% of
    the ingest path)."""
    info = conn.info
    return info.host, info.port, info.dbname


def database_url() -> str:
    return os.environ.get("SLUICE_DATABASE_URL") or embedded_url()
