"""Migration 0009 makes connection names unique: names already repeated keep their first
holder, the others get their id appended; then a repeat is refused."""

from __future__ import annotations

import datetime as dt
import uuid

import psycopg
import pytest

from sluice.store import connections, migrations

from .test_migration_0004 import _apply_through, bare_db

__all__ = ["bare_db"]  # the fixture, used by name


def test_repeated_names_are_told_apart_then_refused(bare_db: psycopg.Connection) -> None:
    conn = bare_db
    _apply_through(conn, "0008_connection_capture_args")
    t0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    ids = [uuid.UUID(int=n) for n in (3, 1, 2)]
    for n, cid in enumerate(ids):
        conn.execute("INSERT INTO connections (id, name, created_at) VALUES (%s, 'demo', %s)",
                     (cid, t0 + dt.timedelta(minutes=n)))
    conn.execute("INSERT INTO connections (id, name) VALUES (%s, 'prod')", (uuid.uuid4(),))

    assert migrations.migrate(conn)[0] == "0009_connection_name_unique"
    names = dict(conn.execute("SELECT id, name FROM connections").fetchall())
    assert names[ids[0]] == "demo"  # the first created keeps it
    assert names[ids[1]] == f"demo ({ids[1]})"
    assert names[ids[2]] == f"demo ({ids[2]})"
    assert sorted(names.values())[-1] == "prod"

    with pytest.raises(connections.NameTaken) as taken:
        connections.create_connection(conn, "prod")
    assert taken.value.existing_id == connections.find_by_name(conn, "prod")
