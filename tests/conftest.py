"""Shared fixtures: one suite, two PostgreSQL backends (embedded pgserver; external via env).

- Embedded: always, a private pgserver PostgreSQL in a temp dir (a fresh machine has no server).
- External: when SLUICE_TEST_DATABASE_URL is set (CI sets it to this machine's PostgreSQL).
Each backend gets a migrated template database; `fresh_db_url` clones it per test.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from sluice.store import partitions
from sluice.store.db import embedded_url
from sluice.store.migrations import migrate

# Captured Celery traffic, in the repo (tests/fixtures/capture.py records it again).
FIXTURES = Path(__file__).resolve().parent / "fixtures"

BACKENDS = ["embedded", "external"]


def _server_url(backend: str) -> str | None:
    if backend == "external":
        return os.environ.get("SLUICE_TEST_DATABASE_URL") or None
    # outside pytest's basetemp, which a concurrent pytest run may rotate away under us
    return embedded_url(Path(tempfile.mkdtemp(prefix="sluice-test-pg-")), delete_on_exit=True)


def _with_db(url: str, dbname: str) -> str:
    return psycopg.conninfo.make_conninfo(url, dbname=dbname)


@pytest.fixture(scope="session", params=BACKENDS)
def pg_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[str]:
    """Admin URL of one PostgreSQL server, with a migrated template database on it."""
    url = _server_url(request.param)
    if url is None:
        pytest.skip("external PostgreSQL not configured (SLUICE_TEST_DATABASE_URL)")
    template = f"sluice_tpl_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(template)))
    with psycopg.connect(_with_db(url, template), autocommit=True) as conn:
        migrate(conn)
    yield url + ("&" if "?" in url else "?") + f"sluice_template={template}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(template))
        )


def _split(server: str) -> tuple[str, str]:
    base, _, template = server.rpartition("sluice_template=")
    return base.rstrip("?&"), template


@contextmanager
def new_database(pg_server: str) -> Iterator[str]:
    """A new, migrated, empty database on the server (dropped after), without partitions."""
    base, template = _split(pg_server)
    name = f"sluice_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )
    try:
        yield _with_db(base, name)
    finally:
        with psycopg.connect(base, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))


@pytest.fixture
def fresh_db_url(pg_server: str) -> Iterator[str]:
    """A new, migrated, empty database for one test (dropped after)."""
    with new_database(pg_server) as url:
        partitions.forget_cache()
        with psycopg.connect(url, autocommit=True) as conn:
            partitions.ensure_window(conn)
        yield url


@pytest.fixture
def db(fresh_db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="session")
def fixture_events_path() -> Path:
    return FIXTURES / "celery-5.7-events.jsonl"


@pytest.fixture(scope="session")
def fixture_pubsub_path() -> Path:
    return FIXTURES / "celery-5.7-redis-pubsub.jsonl"
