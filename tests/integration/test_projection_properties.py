"""On the real projector: any arrival order, batching and duplication -> the same jobs rows."""

from __future__ import annotations

import itertools
import uuid
from pathlib import Path
from typing import Any

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sluice.domain.events import Event
from sluice.service import ingest
from sluice.store import connections
from tests.conftest import FIXTURES
from tests.helpers import normalized

EVENTS = normalized(FIXTURES / "celery-5.7-events.jsonl")
COLUMNS = ("job_id, state, name, queue, worker, retries, args, kwargs, result, sent_at, "
           "received_at, started_at, finished_at, runtime, exception, traceback, eta, "
           "rejected, first_seen_at, last_event_at, events, outcomes, fold")


def _rows(db: psycopg.Connection, cid: str) -> list[tuple[Any, ...]]:
    return db.execute(f"SELECT {COLUMNS} FROM jobs WHERE connection_id = %s ORDER BY job_id",
                      (cid,)).fetchall()


def _load(db: psycopg.Connection, events: list[Event], cuts: list[int]) -> str:
    cid = connections.create_connection(db, f"prop-{uuid.uuid4().hex[:12]}")  # names unique
    bounds = [0, *sorted(cuts), len(events)]
    for a, b in itertools.pairwise(bounds):
        if a < b:
            ingest.append(db, cid, events[a:b])
    return cid


def test_any_order_batching_and_duplication_gives_the_same_jobs(
    db: psycopg.Connection, fixture_events_path: Path
) -> None:
    reference = _rows(db, _load(db, EVENTS, []))

    @given(st.permutations(EVENTS), st.lists(st.sampled_from(EVENTS), max_size=20),
           st.lists(st.integers(0, len(EVENTS) + 20), max_size=6))
    @settings(max_examples=12, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture,
                                     HealthCheck.too_slow])
    def check(order: list[Event], copies: list[Event], cuts: list[int]) -> None:
        assert _rows(db, _load(db, order + copies, cuts)) == reference

    check()
