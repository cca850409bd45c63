"""Job reads: the filtered, keyset-paginated list, facet counts, and one job's detail."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import itertools
from typing import Any

import msgspec
import psycopg
from psycopg.rows import dict_row

from sluice.domain.states import State
from sluice.store.db import Database, database_of
from sluice.store.sqlfiles import queries

from ._common import EPOCH, contains, like_escape, utc, with_filters

Q = queries(__file__, "jobs.sql")
_LINKS_LIMIT = 200  # children / group siblings listed on a detail page
FACET_CAP = 10_000  # facet counts stop here: exact totals of millions cost seconds


class InvalidCursor(ValueError):
    """A cursor that this server did not issue (or that was altered)."""


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


class JobPage(msgspec.Struct, omit_defaults=True):
    items: list[Job]
    next_cursor: str | None
    facets: dict[str, int] | None = None  # with facets=true: jobs per state
    facets_cap: int | None = None  # facet counts stop at this number ("10000+")


class Transition(msgspec.Struct):
    state: str
    at: dt.datetime
    kind: str
    hostname: str | None
    attempt: int


class JobRef(msgspec.Struct):
    id: str
    name: str | None
    state: str


class Timing(msgspec.Struct):
    """Seconds spent per phase, summed over attempts (None when never in that phase)."""

    queued: float | None
    scheduled: float | None  # waiting for an ETA / countdown (incl. retry delays)
    runtime: float | None
    total: float | None  # first seen -> finished (or -> last event while unfinished)


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


# --- cursor: opaque, but only an encoding of the last row's sort key ---------------------

def encode_cursor(first_seen_at: dt.datetime, job_id: str) -> str:
    micros = (first_seen_at - EPOCH) // dt.timedelta(microseconds=1)  # exact, no float
    raw = msgspec.json.encode([micros, job_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        micros, job_id = msgspec.json.decode(raw, type=tuple[int, str])
        return EPOCH + dt.timedelta(microseconds=micros), job_id
    except (binascii.Error, msgspec.DecodeError, ValueError, OverflowError) as exc:
        raise InvalidCursor("not a cursor issued by this API") from exc


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


_TEXT_FILTERS = ("f_name", "f_q")
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
    text = [n for n in names if n in _TEXT_FILTERS]
    if text:
        rows = _rows(conn, first_statement(f, names), params)
    next_cursor = None
    if len(rows) <= limit and text and not _has_trigram(conn):
        statement = _with_window(Q["list_jobs_scan_text"], names, f)
        scanned = _rows(conn, statement, {**params, "window": SCAN_WINDOW})
        rows = [r for r in scanned if r["job_id"] is not None]
        if len(rows) <= limit and scanned and scanned[0]["scanned"] >= SCAN_WINDOW:
            next_cursor = encode_cursor(scanned[0]["edge_at"], scanned[0]["edge_id"])
    elif len(rows) <= limit:
        # the trigram-indexed text filters choose their own index
        statement = _plain(names, "%(limit)s") if text else first_statement(f, names)
        rows = _rows(conn, statement, params)
    items: list[Job] = [_job(r) for r in rows[:limit]]
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor(last["first_seen_at"], last["job_id"])
    if not facets:
        return JobPage(items, next_cursor)
    return JobPage(items, next_cursor, job_facets(conn, connection_id, f), FACET_CAP)


_STATE_LITERALS = {s.value: f"'{s.value}'" for s in State}  # static SQL, never user text


def _merged(f: JobFilter, names: list[str]) -> bool:
    """Per-state ranges merged, unless a worker or id filter has its own index (or the states
    asked for are none of Sluice's: the plain statement finds nothing)."""
    return not {"f_worker", "f_id"} & set(names) and (
        not f.states or bool(set(f.states) & _STATE_LITERALS.keys()))


def _plain(names: list[str], limit: str) -> str:
    """The newest `limit` jobs under the filters, by whichever index the planner picks."""
    return with_filters(Q["list_jobs"], Q, names).replace("{limit}", limit)


def _newest(f: JobFilter, names: list[str], limit: str) -> str:
    """The newest `limit` jobs under the (non-text) filters: per-state ranges merged, or the
    plain statement where a worker or id filter has its own index."""
    if not _merged(f, names):
        return _plain(names, limit)
    others = " ".join(Q[n] for n in names if n not in ("f_state", "f_states"))
    states = sorted(set(f.states) & _STATE_LITERALS.keys()) if f.states else list(_STATE_LITERALS)
    branch = Q["newest_branch"].replace("{filters}", others).replace("{limit}", limit)
    branches = " UNION ALL ".join(branch.replace("{state}", _STATE_LITERALS[s]) for s in states)
    return Q["list_jobs_merged"].replace("{newest}", branches).replace("{limit}", limit)


def _with_window(statement: str, names: list[str], f: JobFilter) -> str:
    """A text statement with its window: the newest jobs under the other filters."""
    plain = [n for n in names if n not in _TEXT_FILTERS]
    text = " ".join(Q[n] for n in names if n in _TEXT_FILTERS)
    return (statement.replace("{window}", _newest(f, plain, "%(window)s"))
            .replace("{text}", text))


def first_statement(f: JobFilter, names: list[str]) -> str:
    """The statement a list runs first for these filters (`_filters`' names)."""
    if any(n in _TEXT_FILTERS for n in names):
        return _with_window(Q["list_jobs_recent_text"], names, f)
    return _newest(f, names, "%(limit)s")


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
    statement = with_filters(Q["job_facets"], Q, names)
    return {state: int(count) for state, count in conn.execute(statement, params)}


# --- detail -------------------------------------------------------------------------------

def _timing(job: JobDetail, history: list[Transition]) -> Timing:
    spent: dict[str, float] = {}
    for here, nxt in itertools.pairwise(history):
        # clocks of producer and worker differ: never report a negative phase
        spent[here.state] = spent.get(here.state, 0.0) + max(0.0, (nxt.at - here.at)
                                                             .total_seconds())
    end = job.finished_at or job.last_event_at
    total = None
    if end is not None and job.first_seen_at is not None:
        total = max(0.0, (end - job.first_seen_at).total_seconds())
    waiting = [s for s in (State.SCHEDULED, State.RETRYING) if s.value in spent]
    runtime = job.runtime if job.runtime is not None else spent.get(State.ACTIVE.value)
    return Timing(
        queued=spent.get(State.QUEUED.value),
        scheduled=sum(spent[s.value] for s in waiting) if waiting else None,
        runtime=runtime,
        total=total,
    )


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
    job.timing = _timing(job, job.history)
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
    return job


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
