"""Numbered migrations (`sluice/sql/migrations/NNNN_*.sql`, read from the package),
applied in order, one transaction each, recorded in `schema_migrations`."""

from __future__ import annotations

import logging
import re
from importlib import resources
from importlib.resources.abc import Traversable

import psycopg

from .sqlfiles import queries

log = logging.getLogger(__name__)
_MIGRATION_RE = re.compile(r"^(\d{4})_[\w-]+\.sql$")
_LOCK_ID = 0x51_1CE_0001  # serializes concurrent `serve` starts
_PACKAGE = "sluice.sql"
Q = queries(__package__, "admin.sql")


def available() -> list[tuple[str, Traversable]]:
    """(version, file) of every migration the package holds, in order."""
    folder = resources.files(_PACKAGE).joinpath("migrations")
    found = [(entry.name.removesuffix(".sql"), entry) for entry in folder.iterdir()
             if _MIGRATION_RE.match(entry.name)]
    return sorted(found, key=lambda item: item[0])


def schema_text() -> str:
    """`schema.sql`: the schema every migration applied in order gives (a test holds them
    equal)."""
    return resources.files(_PACKAGE).joinpath("schema.sql").read_text(encoding="utf-8")


def migrate(conn: psycopg.Connection) -> list[str]:
    """Apply the migrations not yet applied; return their names. Idempotent."""
    applied_now: list[str] = []
    with conn.transaction():
        conn.execute(Q["lock_migrations"], {"id": _LOCK_ID})
        conn.execute(Q["create_migrations_table"])
    for version, path in available():
        with conn.transaction():
            conn.execute(Q["lock_migrations"], {"id": _LOCK_ID})
            if conn.execute(Q["migration_applied"], {"version": version}).fetchone():
                continue
            log.info("applying migration %s", version)
            conn.execute(path.read_text(encoding="utf-8"))
            conn.execute(Q["record_migration"], {"version": version})
            applied_now.append(version)
    return applied_now
