"""Numbered migrations from sql/, applied in order, one transaction each, recorded."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import psycopg

log = logging.getLogger(__name__)
_MIGRATION_RE = re.compile(r"^(\d{4})_[\w-]+\.sql$")
_LOCK_ID = 0x51_1CE_0001  # serializes concurrent `serve` starts


def migrations_dir() -> Path:
    here = Path(__file__).resolve()
    for candidate in (here.parents[3] / "sql", here.parents[1] / "_sql"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("sluice's sql/ migrations directory is missing")


def available() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(migrations_dir().iterdir()):
        if _MIGRATION_RE.match(path.name):
            found.append((path.stem, path))
    return found


def migrate(conn: psycopg.Connection) -> list[str]:
    """Apply the migrations not yet applied; return their names. Idempotent."""
    applied_now: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
    for version, path in available():
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
            done = conn.execute(
                "SELECT 1 FROM schema_migrations WHERE version = %s", (version,)
            ).fetchone()
            if done:
                continue
            log.info("applying migration %s", version)
            conn.execute(path.read_text(encoding="utf-8"))
            conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
            applied_now.append(version)
    return applied_now
