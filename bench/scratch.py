"""A throwaway database for one benchmark run: created on the server at SLUICE_DATABASE_URL,
else on an embedded PostgreSQL, and dropped afterwards."""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

from sluice.store.db import embedded_url


@contextmanager
def scratch_database(embedded_dir: Path) -> Iterator[str]:
    """The URL of a new, empty database; `embedded_dir` holds the embedded server if needed."""
    server = os.environ.get("SLUICE_DATABASE_URL")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs' XDG_RUNTIME_DIR notice
        admin = server or embedded_url(embedded_dir)
    name = f"sluice_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield psycopg.conninfo.make_conninfo(admin, dbname=name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))
