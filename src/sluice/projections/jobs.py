"""Jobs, their transitions and per-minute rollups: re-fold each touched job from the log."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import msgspec
import psycopg

from sluice.domain.events import EVENT_DECODER
from sluice.domain.fold import JobView, fold
from sluice.store.sqlfiles import queries

Q = queries(__file__)
_ENC = msgspec.json.Encoder()
# A rollup contribution as stored on the job: [minute, outcome, runtime, name, queue].
Contribution = tuple[int, str, float | None, str, str]


def _contributions(view: JobView) -> list[Contribution]:
    return [(o.minute, o.outcome, o.runtime, view.name or "", view.queue or "")
            for o in view.outcomes]


def _load(conn: psycopg.Connection, connection_id: str, job_ids: list[str], upto: int) -> (
    tuple[list[JobView], dict[str, list[Contribution]]]
):
    params = {"connection_id": connection_id, "job_ids": job_ids, "upto": upto}
    by_job: dict[str, list[Any]] = defaultdict(list)
    for (payload,) in conn.execute(Q["job_events"], params):
        event = EVENT_DECODER.decode(payload)
        by_job[event.job_id or ""].append(event)
    old = {
        job_id: [tuple(c) for c in msgspec.json.decode(raw)]
        for job_id, raw in conn.execute(Q["job_outcomes"], params)
    }
    views = [fold(job_id, by_job[job_id]) for job_id in job_ids if by_job.get(job_id)]
    return views, old  # type: ignore[return-value]


def _upsert_jobs(conn: psycopg.Connection, connection_id: str, views: list[JobView],
                 upto: int) -> None:
    cols: dict[str, list[Any]] = defaultdict(list)
    for v in views:
        for field in ("state", "name", "queue", "routing_key", "worker", "retries", "args",
                      "kwargs", "result", "sent_at", "received_at", "started_at",
                      "finished_at", "runtime", "exception", "traceback", "eta", "expires",
                      "parent_id", "root_id", "group_id", "rejected", "last_event_at",
                      "events"):
            cols[field].append(getattr(v, field))
        cols["job_id"].append(v.id)
        cols["first_seen_at"].append(min(t.at for t in v.history))
        cols["outcomes"].append(_ENC.encode(_contributions(v)).decode())
    conn.execute(Q["upsert_jobs"], {"connection_id": connection_id, "position": upto, **cols})


def _replace_transitions(conn: psycopg.Connection, connection_id: str, views: list[JobView]
                         ) -> None:
    cols: dict[str, list[Any]] = defaultdict(list)
    for v in views:
        for seq, t in enumerate(v.history):
            cols["job_id"].append(v.id)
            cols["seq"].append(seq)
            cols["state"].append(t.state)
            cols["at"].append(t.at)
            cols["kind"].append(t.kind)
            cols["hostname"].append(t.hostname)
            cols["attempt"].append(t.attempt)
            cols["dedup_key"].append(t.dedup_key)
    params = {"connection_id": connection_id, "job_ids": [v.id for v in views]}
    conn.execute(Q["delete_transitions"], params)
    conn.execute(Q["insert_transitions"], {"connection_id": connection_id, **cols})


def _apply_rollups(conn: psycopg.Connection, connection_id: str, views: list[JobView],
                   old: dict[str, list[Contribution]]) -> None:
    """Add each job's new contributions and take back its old ones (exact counts and sums)."""
    delta: dict[tuple[int, str, str, str], list[Any]] = {}
    for v in views:
        for sign, contribs in ((-1, old.get(v.id, [])), (1, _contributions(v))):
            for minute, outcome, runtime, name, queue in contribs:
                row = delta.setdefault((minute, name, queue, outcome), [0, 0.0, None])
                row[0] += sign
                row[1] += sign * (runtime or 0.0)
                if sign > 0 and runtime is not None:
                    row[2] = runtime if row[2] is None else max(row[2], runtime)
    changed = {k: r for k, r in delta.items() if r[0] != 0 or r[1] != 0.0 or r[2] is not None}
    if not changed:
        return
    keys = sorted(changed)
    conn.execute(
        Q["upsert_rollups"],
        {
            "connection_id": connection_id,
            "minute": [float(k[0]) for k in keys],
            "name": [k[1] for k in keys],
            "queue": [k[2] for k in keys],
            "outcome": [k[3] for k in keys],
            "count": [changed[k][0] for k in keys],
            "runtime_sum": [changed[k][1] for k in keys],
            "runtime_max": [changed[k][2] for k in keys],
        },
    )
    if any(r[0] < 0 for r in changed.values()):
        import datetime as dt

        minutes = sorted({dt.datetime.fromtimestamp(k[0], dt.UTC) for k in keys})
        conn.execute(Q["delete_empty_rollups"],
                     {"connection_id": connection_id, "minutes": minutes})


def project_jobs(conn: psycopg.Connection, connection_id: str, job_ids: list[str],
                 upto: int) -> None:
    views, old = _load(conn, connection_id, job_ids, upto)
    if not views:
        return
    _upsert_jobs(conn, connection_id, views, upto)
    _replace_transitions(conn, connection_id, views)
    _apply_rollups(conn, connection_id, views, old)
