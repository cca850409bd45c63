"""A connection's setup report (`GET /api/connection/health`, `sluice doctor`): what its
recent traffic says is missing from the Celery configuration.

The facts come from a bounded sample of the log (the newest SAMPLE events of the window)
and the jobs and workers read models (index probes); the rules are `domain.health`'s.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

import msgspec
import psycopg

from sluice.domain.health import Finding, Observations, Severity, Thresholds, evaluate
from sluice.store.sqlfiles import queries

Q = queries(__package__, "connection_health.sql")

SAMPLE: Final = 20_000  # events read at most
MAX_HOSTS: Final = 200  # workers, producer/worker pairs and hosts reported at most
MAX_JOBS: Final = 5_000  # received jobs checked for a sent event at most
DEFAULT_WINDOW_S: Final = 900.0
DEFAULT_SILENCE_S: Final = 600.0
# Source clocks may run behind: partitions (by source day) this far before the window count.
_DAY_SLACK: Final = dt.timedelta(days=1)


class _Facts(msgspec.Struct):
    events: int
    capped: bool
    received_jobs: int
    unsent_jobs: int
    sent_events: int
    sources: list[dict[str, object]]
    workers: list[dict[str, object]]
    pairs: list[dict[str, object]]
    ahead: list[dict[str, object]]


_FACTS: Final = msgspec.json.Decoder(_Facts)


class Report(msgspec.Struct):
    connection_id: str
    status: str  # "ok", or the most severe finding's severity
    checked_at: float  # server time, epoch seconds
    window_s: float
    events: int  # events looked at
    capped: bool  # the window held more events than were looked at
    findings: list[Finding]


def observe(conn: psycopg.Connection, connection_id: str, window_s: float,
            now: dt.datetime | None = None) -> Observations:
    """The window's facts: one probe for the latest event, one bounded sample query.
    `now`: the end of the window (default: the database's clock)."""
    row = conn.execute(Q["last_event"], {"connection_id": connection_id}).fetchone()
    assert row is not None
    now = now or row[0]
    since = now - dt.timedelta(seconds=window_s)
    last = None if row[1] is None else float(row[1])
    if last is None:
        return Observations(now=now.timestamp(), window_s=window_s)
    text = conn.execute(Q["observations"], {
        "connection_id": connection_id, "since": since,
        "since_day": (since - _DAY_SLACK).date(), "sample": SAMPLE,
        "max_hosts": MAX_HOSTS, "max_jobs": MAX_JOBS,
    }).fetchone()
    assert text is not None
    facts = _FACTS.decode(text[0])
    return msgspec.convert({
        "now": now.timestamp(), "window_s": window_s, "last_event_at": last,
        **msgspec.structs.asdict(facts)}, Observations)


def report(conn: psycopg.Connection, connection_id: str, *,
           window_s: float = DEFAULT_WINDOW_S, silence_s: float = DEFAULT_SILENCE_S,
           now: dt.datetime | None = None) -> Report:
    obs = observe(conn, connection_id, window_s, now)
    findings = evaluate(obs, Thresholds(silence_s=silence_s))
    status = findings[0].severity if findings and findings[0].severity != Severity.INFO \
        else "ok"
    return Report(connection_id, str(status), obs.now, window_s, obs.events, obs.capped,
                  findings)
