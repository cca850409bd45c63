"""Where the database is: SLUICE_DATABASE_URL, else an embedded PostgreSQL (pgserver) in the
data directory: SLUICE_DATA_DIR, else the user's data directory (the same from any working
directory, so every command finds the one database)."""

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


APP_NAME = "sluice"


def data_dir() -> Path:
    """SLUICE_DATA_DIR, else the platform's per-user data directory (~/.local/share/sluice
    on Linux, ~/Library/Application Support/sluice on macOS); created on demand."""
    configured = os.environ.get("SLUICE_DATA_DIR")
    if configured:
        path = Path(configured).expanduser()
    else:
        import platformdirs

        path = Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    path = path.resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def embedded_dir() -> Path:
    """Where the embedded PostgreSQL keeps its files."""
    return data_dir() / "pg"


def embedded_url(directory: Path | None = None, *, delete_on_exit: bool = False) -> str:
    """Start (once per process) a private PostgreSQL under the data dir and return its URL.
    It stops when the process exits (and its files go too with `delete_on_exit`)."""
    pgdata = (directory or embedded_dir()).resolve()
    with _lock:
        server = _embedded.get(pgdata)
        if server is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # platformdirs' XDG_RUNTIME_DIR notice
                import pgserver.postgres_server

                pgdata.mkdir(parents=True, exist_ok=True)
                log.debug("starting embedded PostgreSQL in %s", pgdata)
                _forget_dead_handles(pgdata)
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


def _forget_dead_handles(pgdata: Path) -> None:
    """pgserver stops a server when its last user exits, counting users by pid in a file of
    the data directory. A process killed before its exit hooks ran stays listed forever and
    the server would never stop: drop the pids of processes that are gone."""
    import psutil
    from pgserver.postgres_server import PostgresServer
    from pgserver.utils import DiskList

    handles = DiskList(pgdata / ".handle_pids.json")
    with PostgresServer._lock:
        try:
            pids = handles.get()
        except (OSError, ValueError):
            pids = []
        alive = [pid for pid in pids if isinstance(pid, int) and psutil.pid_exists(pid)]
        if alive != pids:
            handles.put(alive)


def stop_embedded(directory: Path | None = None) -> None:
    """Stop now, not at exit, the embedded server this process started in `directory`
    (default: the data directory's), unless another live process still uses it (the last one
    stops it); its files go too if it was started with `delete_on_exit`. For `serve` on a
    signal, and for callers that remove the directory themselves, which must not happen
    under a running server."""
    pgdata = (directory or embedded_dir()).resolve()
    with _lock:
        server = _embedded.pop(pgdata, None)
    if server is not None:
        _forget_dead_handles(pgdata)
        server.cleanup()


def describe_database() -> str:
    """Which database the commands of this process use, for people (no password)."""
    url = os.environ.get("SLUICE_DATABASE_URL")
    if not url:
        return f"embedded PostgreSQL in {embedded_dir()}"
    try:
        parts = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "SLUICE_DATABASE_URL (unparsable)"
    host, port, name = parts.get("host") or "localhost", parts.get("port"), parts.get("dbname")
    user = f"{parts['user']}@" if parts.get("user") else ""
    return (f"postgresql://{user}{host}{':' + str(port) if port else ''}/{name or ''} "
            "(SLUICE_DATABASE_URL)")


Database = tuple[str, int, str]  # host, port, database name


def database_of(conn: psycopg.Connection) -> Database:
    """The database a connection is on (host, port, name), to key per-database caches:
    about 1 µs, where building `conn.info.dsn` takes ~80 (once per append, that was 1% of
    the ingest path)."""
    info = conn.info
    return info.host, info.port, info.dbname


def database_url() -> str:
    return os.environ.get("SLUICE_DATABASE_URL") or embedded_url()
