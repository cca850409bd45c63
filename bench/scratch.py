"""A throwaway database for one benchmark run: created on the server at SLUICE_DATABASE_URL,
else on a private embedded PostgreSQL, and dropped afterwards."""

from __future__ import annotations

import os
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

from sluice.store.db import embedded_url, stop_embedded


@contextmanager
def scratch_database() -> Iterator[str]:
    """The URL of a new, empty database, dropped afterwards; an embedded server, if one is
    needed, lives in a private temporary directory, stopped and removed afterwards."""
    server = os.environ.get("SLUICE_DATABASE_URL")
    with tempfile.TemporaryDirectory(prefix="sluice-bench-pg-") as tmp:
        embedded_dir = Path(tmp) / "pg"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs' XDG_RUNTIME_DIR notice
            admin = server or embedded_url(embedded_dir, delete_on_exit=True)
        name = f"sluice_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield psycopg.conninfo.make_conninfo(admin, dbname=name)
        finally:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)))
            if not server:
                stop_embedded(embedded_dir)  # before its directory goes
