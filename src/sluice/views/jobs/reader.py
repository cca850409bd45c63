"""Job reads: the filtered, keyset-paginated list, facet counts, and one job's detail."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
import psycopg
from psycopg.rows import dict_row

from sluice.domain.states import State
from sluice.domain.timing import Timing, timing
from sluice.store.db import Database, database_of
from sluice.store.sqlfiles import queries

from .._sql import contains, like_escape, utc
from ..commands import reader as commands
from . import statements
from .cursor import decode_cursor, encode_cursor

Q = queries(__package__, "reader.sql")
_LINKS_LIMIT = 200  # children / group siblings listed on a detail page
FACET_CAP = 10_000  # facet counts stop here: exact totals of millions cost seconds


class JobFilter(msgspec.Struct, kw_only=True):
    states: list[str] = []
    queue: str | None = None
    worker: str | None = None
    name: str | None = None  # case-insensitive substring of the task name
    id_prefix: str | None = None
    q: str | None = None  # case-insensitive substring of name, id or exception
    since: dt.datetime | None = None  # first seen at or after
    until: dt.datetime | None = None  # first seen before


class Job(msgspec.Struct, kw_only=True):
    id: str
    name: str | None
    state: str
    queue: str | None
    worker: str | None
    retries: int
    sent_at: dt.datetime | None
    received_at: dt.datetime | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    runtime: float | None
    exception: str | None
    first_seen_at: dt.datetime | None
    last_event_at: dt.datetime | None
    parent_id: str | None
    root_id: str | None
    group_id: str | None
    retried_from: str | None = None  # the job a retry command made this one from
    retried_as: str | None = None  # the job a retry command made from this one


class JobPage(msgspec.Struct, omit_defaults=True):
    items: list[Job]
    next_cursor: str | None
    facets: dict[str, int] | None = None  # with facets=true: jobs per state
    facets_cap: int | None = None  # facet counts stop at this number ("10000+")


class Transition(msgspec.Struct, omit_defaults=True):
    """One entry of a job's history as the API answers it: named fields, an ISO time. The
    job row keeps the same facts as the fold's `StoredTransition` (positional, epoch
    seconds: compact, and what the job_transitions view reads by position); this shape is
    what clients and the OpenAPI schema know as Transition."""

    state: str
    at: dt.datetime
    kind: str
    hostname: str | None
    attempt: int
    # a command's entry (kind command.<action>; state: the command's status)
    command_id: str | None = None
    requested_by: str | None = None
    reason: str | None = None
    new_job_id: str | None = None


class JobRef(msgspec.Struct):
    id: str
    name: str | None
    state: str


class JobDetail(Job, kw_only=True):
    routing_key: str | None = None
    args: str | None = None
    kwargs: str | None = None
    result: str | None = None
    traceback: str | None = None
    eta: str | None = None
    expires: str | None = None
    rejected: bool = False
    events: int = 0
    history: list[Transition] = []
    timing: Timing | None = None
    parent: JobRef | None = None
    root: JobRef | None = None
    children: list[JobRef] = []
    group: list[JobRef] = []


_JOB_FIELDS = frozenset(Job.__struct_fields__)


def _job(row: dict[str, Any], cls: type[Job] = Job, **extra: Any) -> Any:
    values: dict[str, Any] = {k: (utc(v) if isinstance(v, dt.datetime) else v)
                              for k, v in row.items()}
    values["id"] = values.pop("job_id")
    fields = _JOB_FIELDS if cls is Job else frozenset(cls.__struct_fields__)
    return cls(**{k: v for k, v in values.items() if k in fields}, **extra)


# --- list ---------------------------------------------------------------------------------

def _filters(f: JobFilter, *, with_state: bool) -> tuple[list[str], dict[str, Any]]:
    names: list[str] = []
    params: dict[str, Any] = {}
    if with_state and len(f.states) == 1:
        names.append("f_state")
        params["state"] = f.states[0]
    elif with_state and f.states:
        names.append("f_states")
        params["states"] = sorted(set(f.states))
    for field in ("queue", "worker"):
        if getattr(f, field) is not None:
            names.append(f"f_{field}")
            params[field] = getattr(f, field)
    if f.name:
        names.append("f_name")
        params["name_like"] = contains(f.name)
    if f.id_prefix:
        names.append("f_id")
        params["id_like"] = like_escape(f.id_prefix) + "%"
    if f.q:
        names.append("f_q")
        params["q_like"] = contains(f.q)
        params["q_id_like"] = like_escape(f.q) + "%"
    if f.since is not None:
        names.append("f_since")
        params["since"] = f.since
    if f.until is not None:
        names.append("f_until")
        params["until"] = f.until
    return names, params


TEXT_WINDOW = 10_000  # newest rows scanned for a substring match before using the index
SCAN_WINDOW = 20_000  # without trigram indexes: rows scanned per request at most
_trigram: dict[Database, bool] = {}  # per database: were the trigram indexes created (0003)?


def _has_trigram(conn: psycopg.Connection) -> bool:
    database = database_of(conn)
    if database not in _trigram:
        row = conn.execute(Q["has_trigram_index"]).fetchone()
        _trigram[database] = bool(row and row[0])
    return _trigram[database]


def list_jobs(
    conn: psycopg.Connection,
    connection_id: str,
    f: JobFilter,
    *,
    limit: int = 50,
    cursor: str | None = None,
    facets: bool = False,
) -> JobPage:
    """Newest first by (first_seen_at, job_id); the cursor continues strictly after the last
    row, so rows inserted meanwhile (newer) never shift later pages: no duplicates, no gaps.
    Without trigram indexes a substring search scans a bounded window per request, so a page
    may hold fewer than `limit` jobs: continue while `next_cursor` is not null."""
    names, params = _filters(f, with_state=True)
    params.update(connection_id=connection_id, limit=limit + 1, window=TEXT_WINDOW)
    if cursor is not None:
        names.append("f_cursor")
        params["cursor_at"], params["cursor_id"] = decode_cursor(cursor)
    rows: list[dict[str, Any]] = []
    text = statements.has_text(names)
    if text:
        rows = _rows(conn, first_statement(f, names), params)
    next_cursor = None
    if len(rows) <= limit and text and not _has_trigram(conn):
        statement = statements.scan_text(f.states, names)
        scanned = _rows(conn, statement, {**params, "window": SCAN_WINDOW})
        rows = [r for r in scanned if r["job_id"] is not None]
        if len(rows) <= limit and scanned and scanned[0]["scanned"] >= SCAN_WINDOW:
            next_cursor = encode_cursor(scanned[0]["edge_at"], scanned[0]["edge_id"])
    elif len(rows) <= limit:
        statement = statements.plain(names) if text else first_statement(f, names)
        rows = _rows(conn, statement, params)
    items: list[Job] = [_job(r) for r in rows[:limit]]
    _link(conn, connection_id, items)
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor(last["first_seen_at"], last["job_id"])
    if not facets:
        return JobPage(items, next_cursor)
    return JobPage(items, next_cursor, job_facets(conn, connection_id, f), FACET_CAP)


def first_statement(f: JobFilter, names: list[str]) -> str:
    """The statement a list runs first for these filters (`_filters`' names)."""
    return statements.first(f.states, names)


def _rows(conn: psycopg.Connection, statement: str, params: dict[str, Any]
          ) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(statement, params).fetchall()


def job_facets(conn: psycopg.Connection, connection_id: str, f: JobFilter) -> dict[str, int]:
    """Jobs per state under every filter but the state one (so each state tab shows its
    count), every state present; a count stops at FACET_CAP (read it as "at least")."""
    names, params = _filters(f, with_state=False)
    params.update(connection_id=connection_id, cap=FACET_CAP,
                  all_states=[s.value for s in State])
    statement = statements.facets(names)
    return {state: int(count) for state, count in conn.execute(statement, params)}


# --- detail -------------------------------------------------------------------------------

def _epoch(at: dt.datetime | None) -> float | None:
    return None if at is None else at.timestamp()


def _refs(rows: list[tuple[str, str | None, str]]) -> list[JobRef]:
    return [JobRef(job_id, name, state) for job_id, name, state in rows]


def get_job(conn: psycopg.Connection, connection_id: str, job_id: str) -> JobDetail | None:
    """One job with its history, timing and links; None when this connection never saw it."""
    params: dict[str, Any] = {"connection_id": connection_id, "job_id": job_id,
                              "limit": _LINKS_LIMIT}
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(Q["job_detail"], params).fetchone()
    if row is None:
        return None
    job: JobDetail = _job(row, JobDetail)
    job.history = [Transition(s, utc(at), k, h, a)  # type: ignore[arg-type]
                   for s, at, k, h, a in conn.execute(Q["job_history"], params)]
    job.timing = timing(((t.state, t.at.timestamp()) for t in job.history),
                        first_seen_at=_epoch(job.first_seen_at),
                        last_event_at=_epoch(job.last_event_at),
                        finished_at=_epoch(job.finished_at), runtime=job.runtime)
    linked = [i for i in (job.parent_id, job.root_id) if i and i != job_id]
    refs: dict[str, JobRef] = {}
    if linked:
        refs = {r.id: r for r in _refs(conn.execute(
            Q["job_refs"], {"connection_id": connection_id, "job_ids": linked}).fetchall())}
    if job.parent_id or job.root_id:
        refs[job_id] = JobRef(job_id, job.name, job.state)  # a root job is its own root
        job.parent = _ref_or_unknown(refs, job.parent_id)
        job.root = _ref_or_unknown(refs, job.root_id)
    job.children = _refs(conn.execute(Q["job_children"], params).fetchall())
    if job.group_id:
        job.group = _refs(conn.execute(
            Q["job_group"], {**params, "group_id": job.group_id}).fetchall())
    _with_commands(conn, connection_id, job)
    return job


def _link(conn: psycopg.Connection, connection_id: str, jobs: list[Any]) -> None:
    """Fill retried_from / retried_as from the commands read model."""
    links = commands.job_links(conn, connection_id, [j.id for j in jobs])
    for j in jobs:
        if j.id in links:
            j.retried_from, j.retried_as = links[j.id].retried_from, links[j.id].retried_as


def _with_commands(conn: psycopg.Connection, connection_id: str, job: JobDetail) -> JobDetail:
    """The job's links, and its commands as history entries of their own (after the timing,
    which reads the job's own transitions)."""
    _link(conn, connection_id, [job])
    entries = [Transition(c.status, c.requested_at or c.finished_at or dt.datetime.now(dt.UTC),
                          f"command.{c.action}", None, 0, command_id=c.id,
                          requested_by=c.requested_by, reason=c.reason,
                          new_job_id=c.new_job_id)
               for c in commands.job_commands(conn, connection_id, job.id)]
    if entries:
        job.history = sorted([*job.history, *entries], key=lambda t: t.at)
    return job


def job_detail(conn: psycopg.Connection, connection_id: str, job_id: str) -> JobDetail:
    """`get_job`, or for an id never seen an `unknown` job (with the commands about it: a
    retry's new job is known to Sluice before its worker reports it)."""
    found = get_job(conn, connection_id, job_id)
    return found or _with_commands(conn, connection_id, unknown_job(job_id))


def _ref_or_unknown(refs: dict[str, JobRef], job_id: str | None) -> JobRef | None:
    if job_id is None:
        return None
    return refs.get(job_id, JobRef(job_id, None, State.UNKNOWN.value))


def unknown_job(job_id: str) -> JobDetail:
    """What the API answers for an id it never saw: a plausible job, state unknown."""
    return JobDetail(
        id=job_id, name=None, state=State.UNKNOWN.value, queue=None, worker=None, retries=0,
        sent_at=None, received_at=None, started_at=None, finished_at=None, runtime=None,
        exception=None, first_seen_at=None, last_event_at=None, parent_id=None, root_id=None,
        group_id=None,
    )
