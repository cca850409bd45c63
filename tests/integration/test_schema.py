"""`sql/schema.sql` is the schema the migrations build: on each backend, one empty database gets
`migrate()`, another the text of schema.sql, and their catalogs must be the same (tables and
columns, constraints, indexes, views, sequences, partitions, comments, extensions, ...).

The comparison reads the catalogs (no pg_dump); data, including schema_migrations' rows, is
not compared. A second test checks that the comparison does see a drift."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from psycopg import sql

from sluice.store import migrations
from tests.conftest import _split, _with_db

Dump = dict[str, set[tuple[Any, ...]]]

# Objects that belong to an extension (pg_trgm's functions, types, operators...) are the
# extension's business: the `extensions` entry compares those.
_NOT_EXTENSION_MEMBER = """NOT EXISTS (
    SELECT 1 FROM pg_depend AS d
    WHERE d.classid = {catalog}::regclass AND d.objid = {oid} AND d.deptype = 'e')"""

_USER_SCHEMAS = """{nsp} NOT IN (SELECT oid FROM pg_namespace
    WHERE nspname IN ('pg_catalog', 'information_schema', 'pg_toast')
       OR nspname LIKE 'pg_temp_%' OR nspname LIKE 'pg_toast_temp_%')"""


def _where(alias: str, catalog: str = "'pg_class'") -> str:
    return (_USER_SCHEMAS.format(nsp=f"{alias}.relnamespace") + " AND "
            + _NOT_EXTENSION_MEMBER.format(catalog=catalog, oid=f"{alias}.oid"))


CATALOG_QUERIES: dict[str, str] = {
    "schemas": """
        SELECT n.nspname FROM pg_namespace AS n
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
          AND n.nspname NOT LIKE 'pg_temp_%' AND n.nspname NOT LIKE 'pg_toast_temp_%'""",
    "extensions": """
        SELECT e.extname, e.extversion, n.nspname
        FROM pg_extension AS e JOIN pg_namespace AS n ON n.oid = e.extnamespace""",
    # every relation but indexes (below) and TOAST tables: kind, persistence, options,
    # partitioning (key of a partitioned table; parent and bound of a partition)
    "relations": f"""
        SELECT c.relnamespace::regnamespace::text, c.relname, c.relkind, c.relpersistence,
               c.reloptions::text, c.relrowsecurity, c.relispartition,
               CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END,
               (SELECT string_agg(i.inhparent::regclass::text, ',' ORDER BY i.inhseqno)
                FROM pg_inherits AS i WHERE i.inhrelid = c.oid),
               pg_get_expr(c.relpartbound, c.oid)
        FROM pg_class AS c
        WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S', 'c') AND {_where("c")}""",
    # columns: type (and typmod), collation, nullability, default, ...; their order below
    "columns": f"""
        SELECT c.oid::regclass::text, a.attname, format_type(a.atttypid, a.atttypmod),
               CASE WHEN a.attcollation <> 0 THEN
                   (SELECT co.collname FROM pg_collation AS co WHERE co.oid = a.attcollation)
               END,
               a.attnotnull, pg_get_expr(ad.adbin, ad.adrelid), a.attidentity, a.attgenerated,
               a.attstorage, a.attcompression, a.attstattarget, a.attislocal, a.attinhcount
        FROM pg_class AS c
        JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        LEFT JOIN pg_attrdef AS ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
        WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'c') AND {_where("c")}""",
    "column order": f"""
        SELECT c.oid::regclass::text, string_agg(a.attname, ', ' ORDER BY a.attnum)
        FROM pg_class AS c
        JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'c') AND {_where("c")}
        GROUP BY c.oid""",
    "constraints": f"""
        SELECT c.oid::regclass::text, k.conname, k.contype, pg_get_constraintdef(k.oid),
               k.condeferrable, k.condeferred, k.convalidated, k.conislocal,
               k.conparentid <> 0
        FROM pg_constraint AS k JOIN pg_class AS c ON c.oid = k.conrelid
        WHERE {_where("c")}""",
    "indexes": f"""
        SELECT t.oid::regclass::text, i.relname, pg_get_indexdef(x.indexrelid),
               x.indisprimary, x.indisunique, x.indisvalid, i.reloptions::text,
               (SELECT p.inhparent::regclass::text FROM pg_inherits AS p
                WHERE p.inhrelid = i.oid)
        FROM pg_index AS x
        JOIN pg_class AS i ON i.oid = x.indexrelid
        JOIN pg_class AS t ON t.oid = x.indrelid
        WHERE {_where("t")}""",
    "views": f"""
        SELECT c.oid::regclass::text, c.relkind, pg_get_viewdef(c.oid, true)
        FROM pg_class AS c WHERE c.relkind IN ('v', 'm') AND {_where("c")}""",
    "sequences": f"""
        SELECT c.oid::regclass::text, s.seqtypid::regtype::text, s.seqstart, s.seqincrement,
               s.seqmax, s.seqmin, s.seqcache, s.seqcycle,
               (SELECT d.refobjid::regclass::text || '.' || d.refobjsubid
                FROM pg_depend AS d
                WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                  AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i'))
        FROM pg_sequence AS s JOIN pg_class AS c ON c.oid = s.seqrelid
        WHERE {_where("c")}""",
    "triggers": f"""
        SELECT c.oid::regclass::text, t.tgname, pg_get_triggerdef(t.oid), t.tgenabled
        FROM pg_trigger AS t JOIN pg_class AS c ON c.oid = t.tgrelid
        WHERE NOT t.tgisinternal AND {_where("c")}""",
    "rules": """
        SELECT r.schemaname, r.tablename, r.rulename, r.definition FROM pg_rules AS r
        WHERE r.schemaname NOT IN ('pg_catalog', 'information_schema')""",
    "policies": """
        SELECT p.schemaname, p.tablename, p.policyname, p.cmd, p.qual, p.with_check
        FROM pg_policies AS p""",
    "functions": f"""
        SELECT p.oid::regprocedure::text, p.prokind,
               CASE WHEN p.prokind IN ('f', 'p') THEN pg_get_functiondef(p.oid) END
        FROM pg_proc AS p
        WHERE {_USER_SCHEMAS.format(nsp="p.pronamespace")}
          AND {_NOT_EXTENSION_MEMBER.format(catalog="'pg_proc'", oid="p.oid")}""",
    # types of their own (enums, domains, composites, ranges), not relations' row types
    "types": f"""
        SELECT t.oid::regtype::text, t.typtype, format_type(t.typbasetype, t.typtypmod),
               t.typnotnull, t.typdefault,
               (SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
                FROM pg_enum AS e WHERE e.enumtypid = t.oid)
        FROM pg_type AS t
        WHERE {_USER_SCHEMAS.format(nsp="t.typnamespace")}
          AND {_NOT_EXTENSION_MEMBER.format(catalog="'pg_type'", oid="t.oid")}
          AND t.typelem = 0 AND (t.typrelid = 0 OR EXISTS (
              SELECT 1 FROM pg_class AS c WHERE c.oid = t.typrelid AND c.relkind = 'c'))""",
    # every comment on an object created here (tables, columns, constraints, indexes...)
    "comments": """
        SELECT pg_describe_object(d.classoid, d.objoid, d.objsubid), d.description
        FROM pg_description AS d
        WHERE d.objoid >= 16384 AND NOT EXISTS (
            SELECT 1 FROM pg_depend AS x
            WHERE x.classid = d.classoid AND x.objid = d.objoid AND x.deptype = 'e')""",
}


def catalog_dump(conn: psycopg.Connection) -> Dump:
    return {name: {tuple(row) for row in conn.execute(query)}  # type: ignore[arg-type]
            for name, query in CATALOG_QUERIES.items()}


def differences(migrated: Dump, declared: Dump) -> list[str]:
    """What differs, one line per catalog entry found on one side only."""
    lines = []
    for name in CATALOG_QUERIES:
        for row in sorted(migrated[name] - declared[name], key=repr):
            lines.append(f"{name}: only from the migrations: {row}")
        for row in sorted(declared[name] - migrated[name], key=repr):
            lines.append(f"{name}: only in schema.sql: {row}")
    return lines


@contextmanager
def empty_database(pg_server: str) -> Iterator[psycopg.Connection]:
    """A new database with nothing in it (from template0, not the migrated template)."""
    base, _ = _split(pg_server)
    name = f"sluice_s_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(
            sql.Identifier(name)))
    try:
        with psycopg.connect(_with_db(base, name), autocommit=True) as conn:
            yield conn
    finally:
        with psycopg.connect(base, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))


def apply_schema_file(conn: psycopg.Connection) -> None:
    conn.execute(migrations.schema_text())  # type: ignore[arg-type]
    # as migrate() creates it, in case schema.sql leaves it out
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                 " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")


@pytest.fixture
def both(pg_server: str) -> Iterator[tuple[psycopg.Connection, psycopg.Connection]]:
    """(a database built by migrate(), one built from schema.sql), on the same server."""
    with empty_database(pg_server) as migrated, empty_database(pg_server) as declared:
        assert migrations.migrate(migrated) == [v for v, _ in migrations.available()]
        apply_schema_file(declared)
        yield migrated, declared


def test_schema_file_is_what_the_migrations_build(
    both: tuple[psycopg.Connection, psycopg.Connection],
) -> None:
    migrated, declared = both
    want, got = catalog_dump(migrated), catalog_dump(declared)
    assert {"events", "events_default", "jobs", "job_transitions", "schema_migrations"} <= {
        row[1] for row in want["relations"]}, "the dump does not see the schema"
    drift = differences(want, got)
    assert not drift, "schema.sql differs from the migrations:\n" + "\n".join(drift)


# Each change is one that schema.sql could drift by; the comparison must notice every one.
DRIFTS = {
    "a column missing": "ALTER TABLE jobs DROP COLUMN routing_key",
    "column order": "ALTER TABLE tracking DROP COLUMN position; "  # the same, moved last
                    "ALTER TABLE tracking ADD COLUMN position bigint NOT NULL",
    "a collation": "ALTER TABLE jobs ALTER COLUMN state TYPE text COLLATE \"default\"",
    "a type": "ALTER TABLE jobs ALTER COLUMN outcomes TYPE jsonb",
    "a default": "ALTER TABLE jobs ALTER COLUMN retries SET DEFAULT 1",
    "nullability": "ALTER TABLE workers ALTER COLUMN pid SET NOT NULL",
    "a constraint": "ALTER TABLE connections DROP CONSTRAINT connections_daily_limit_check",
    "an index": "DROP INDEX jobs_parent_idx",
    "an index's definition": "DROP INDEX jobs_worker_idx; CREATE INDEX jobs_worker_idx "
                             "ON jobs (connection_id, worker, first_seen_at DESC, job_id DESC)",
    "a view": "CREATE OR REPLACE VIEW job_transitions AS SELECT j.connection_id, j.job_id, "
              "0 AS seq, h.e->>0 AS state, to_timestamp((h.e->>1)::float8) AS at, "
              "h.e->>2 AS kind, h.e->>3 AS hostname, (h.e->>4)::integer AS attempt "
              "FROM jobs AS j CROSS JOIN LATERAL json_array_elements(j.history) AS h(e)",
    "a sequence": "ALTER SEQUENCE event_batch AS integer",
    "a partition": "DROP TABLE events_default",
    "a comment": "COMMENT ON COLUMN events.payload IS 'other'",
    "a table": "CREATE TABLE extra (id integer)",
}


def test_the_comparison_sees_drift(
    both: tuple[psycopg.Connection, psycopg.Connection],
) -> None:
    migrated, declared = both
    want = catalog_dump(migrated)
    assert not differences(want, catalog_dump(declared))
    unseen = []
    for what, statement in DRIFTS.items():
        with declared.transaction(force_rollback=True):
            declared.execute(statement)  # type: ignore[arg-type]
            if not differences(want, catalog_dump(declared)):
                unseen.append(what)
    assert not unseen, f"drifts the comparison misses: {unseen}"
