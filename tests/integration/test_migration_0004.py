"""Migration 0004 moves each job's history from job_transitions into its row, intact: the view
of the same name reads back exactly the rows the table held."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from sluice.store import migrations

from ..conftest import _split


@pytest.fixture
def bare_db(pg_server: str) -> Iterator[psycopg.Connection]:
    base, _ = _split(pg_server)
    name = f"sluice_m_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        with psycopg.connect(psycopg.conninfo.make_conninfo(base, dbname=name),
                             autocommit=True) as conn:
            yield conn
    finally:
        with psycopg.connect(base, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))


def _apply_through(conn: psycopg.Connection, last: str) -> None:
    conn.execute("CREATE TABLE schema_migrations (version text PRIMARY KEY, "
                 "applied_at timestamptz NOT NULL DEFAULT now())")
    for version, path in migrations.available():
        if version > last:
            break
        conn.execute(path.read_text(encoding="utf-8"))
        conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))


# the columns the view keeps (0005 drops the dedup key, which no read uses)
_HISTORY = ("SELECT connection_id, job_id, seq, state, at, kind, hostname, attempt "
            "FROM job_transitions ORDER BY job_id, seq")


def test_histories_move_into_job_rows(bare_db: psycopg.Connection) -> None:
    conn = bare_db
    _apply_through(conn, "0003_read_indexes")
    cid = uuid.uuid4()
    conn.execute("INSERT INTO connections (id, name) VALUES (%s, 'c')", (cid,))
    t0 = dt.datetime(2026, 11, 20, 10, 0, 0, 123457, tzinfo=dt.UTC)
    transitions = {
        "job-a": [("queued", t0, "job.sent", "web@h", 0, "k1"),
                  ("active", t0 + dt.timedelta(seconds=1.5), "job.started", "w1@h", 0, "k2"),
                  ("completed", t0 + dt.timedelta(seconds=2), "job.succeeded", None, 0, "k3")],
        "job-b": [("queued", t0, "job.sent", "web@h", 0, "k4")],
        "job-c": [],  # a row without history
    }
    for job_id, history in transitions.items():
        conn.execute(
            "INSERT INTO jobs (connection_id, job_id, state, first_seen_at, last_event_at, "
            "events, fold) VALUES (%s, %s, 'queued', %s, %s, 1, '')", (cid, job_id, t0, t0))
        for seq, (state, at, kind, host, attempt, key) in enumerate(history):
            conn.execute(
                "INSERT INTO job_transitions VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (cid, job_id, seq, state, at, kind, host, attempt, key))
    before = conn.execute(_HISTORY).fetchall()

    assert migrations.migrate(conn) == [v for v, _ in migrations.available()
                                        if v > "0003_read_indexes"]

    after = conn.execute(_HISTORY).fetchall()
    assert after == before and len(after) == 4
    kind = conn.execute("SELECT relkind FROM pg_class WHERE relname = 'job_transitions'"
                        ).fetchone()
    assert kind == ("v",)
    # the job id's collation is now "C": a prefix becomes an index range (as on the primary
    # key), which no btree of a locale-collated column allows
    conn.execute("SET enable_seqscan = off")  # a 3-row table: judge the index's usability
    plan = "\n".join(r[0] for r in conn.execute(
        "EXPLAIN SELECT job_id FROM jobs WHERE connection_id = %s AND job_id LIKE 'job-%%'",
        (cid,)))
    assert "job_id >= 'job-'::text" in plan and "job_id < 'job.'::text" in plan, plan
