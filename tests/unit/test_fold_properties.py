"""The job fold is a join: any order, any duplicates, any split into increments: same job."""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sluice.domain.celery import normalize
from sluice.domain.events import Event
from sluice.domain.fold import FoldEvent, JobView, fold, fold_event, fold_ordered, order
from tests.conftest import FIXTURES
from tests.helpers import by_job, normalized

FIXTURE_JOBS = by_job(normalized(FIXTURES / "celery-5.7-events.jsonl"))
SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _view(events: list[Event]) -> JobView:
    return fold(events[0].job_id or "", events)


def _shuffled_with_copies(draw: st.DrawFn, events: list[Event]) -> list[Event]:
    copies = draw(st.lists(st.sampled_from(events), max_size=len(events)))
    return draw(st.permutations(events + copies))


@st.composite
def fixture_job_variants(draw: st.DrawFn) -> tuple[list[Event], list[Event]]:
    job_id = draw(st.sampled_from(sorted(FIXTURE_JOBS)))
    events = FIXTURE_JOBS[job_id]
    return events, _shuffled_with_copies(draw, events)


@given(fixture_job_variants())
@SETTINGS
def test_fixture_jobs_ignore_order_and_duplicates(case: tuple[list[Event], list[Event]]) -> None:
    events, variant = case
    assert _view(variant) == _view(events)


@st.composite
def split_arrivals(draw: st.DrawFn) -> tuple[list[Event], list[list[Event]]]:
    job_id = draw(st.sampled_from(sorted(FIXTURE_JOBS)))
    events = draw(st.permutations(FIXTURE_JOBS[job_id]))
    cuts = sorted(draw(st.lists(st.integers(0, len(events)), max_size=4)))
    chunks = [events[a:b] for a, b in zip([0, *cuts], [*cuts, len(events)], strict=True)]
    return events, chunks


def _incremental(chunks: list[list[Event]]) -> JobView:
    """What the projector does: merge the kept (ordered) events with each new batch."""
    kept: list[Event] = []
    view = None
    for chunk in chunks:
        ranked = order([*kept, *chunk])
        if ranked:
            view = fold_ordered(ranked[0][1].job_id or "", ranked)
            kept = [e for _, e in ranked]
    assert view is not None
    return view


@given(split_arrivals())
@SETTINGS
def test_incremental_projection_equals_fold_from_scratch(
    case: tuple[list[Event], list[list[Event]]],
) -> None:
    events, chunks = case
    assert _incremental(chunks) == _view(events)


# --- generated lifecycles, with producer/worker clock skew -------------------------------

OUTCOMES = {"succeeded": "completed", "failed": "failed", "revoked": "cancelled",
            "rejected": "failed"}


@st.composite
def lifecycles(draw: st.DrawFn) -> tuple[list[Event], str, int]:
    """One job's Celery events: n retries then a final outcome; the producer's clock is off
    from the worker's by up to +-10 s; retry messages come from the pool child."""
    job = draw(st.uuids()).hex
    retries = draw(st.integers(0, 3))
    final = draw(st.sampled_from(sorted(OUTCOMES)))
    skew = draw(st.floats(-10, 10))
    countdown = draw(st.booleans())
    workers = draw(st.lists(st.sampled_from(["w1@a", "w2@b"]), min_size=retries + 1,
                            max_size=retries + 1))
    t = 1_795_000_000.0
    clock = 0
    raw: list[dict[str, object]] = []
    for attempt in range(retries + 1):
        worker = workers[attempt]
        eta = (dt.datetime.fromtimestamp(t + 5, dt.UTC).isoformat()
               if countdown or attempt else None)
        producer = "web@p" if attempt == 0 else f"gen{attempt}@{workers[attempt - 1]}"
        clock += 1
        raw.append({"type": "task-sent", "uuid": job, "name": "app.t", "queue": "q",
                    "retries": attempt, "eta": eta, "hostname": producer, "clock": clock,
                    "timestamp": t + skew})
        raw.append({"type": "task-received", "uuid": job, "name": "app.t", "retries": attempt,
                    "eta": eta, "hostname": worker, "clock": clock + 1, "timestamp": t + 0.01})
        start = t + (5.0 if eta else 0.02)
        raw.append({"type": "task-started", "uuid": job, "hostname": worker,
                    "clock": clock + 2, "timestamp": start})
        if attempt < retries:
            # the next message is published (and may be received) before task-retried
            raw.append({"type": "task-retried", "uuid": job, "hostname": worker,
                        "exception": "IOError()", "clock": clock + 4,
                        "timestamp": start + 0.02})
            t = start + 0.01
        else:
            end = {"uuid": job, "hostname": worker, "clock": clock + 3, "timestamp": start + 0.5}
            if final == "rejected":
                raw.append({**end, "type": "task-failed", "exception": "Reject()"})
                raw.append({**end, "type": "task-rejected", "clock": clock + 4,
                            "timestamp": start + 0.51})
            else:
                extra = {"runtime": 0.5, "result": "1"} if final == "succeeded" else {}
                raw.append({**end, "type": f"task-{final}", **extra})
        clock += 5
    events = []
    for r in raw:
        e = normalize(r)
        assert isinstance(e, Event), e
        events.append(e)
    return events, OUTCOMES[final], retries


@given(lifecycles(), st.data())
@SETTINGS
def test_generated_lifecycles_end_in_their_outcome_whatever_the_order(
    case: tuple[list[Event], str, int], data: st.DataObject,
) -> None:
    events, expected_state, retries = case
    variant = data.draw(st.permutations(events + data.draw(
        st.lists(st.sampled_from(events), max_size=5))))
    view = _view(variant)
    assert view == _view(events)
    assert view.state == expected_state
    assert view.retries == retries
    assert [t.kind for t in view.history].count("job.retried") == retries


@given(lifecycles(), st.data())
@SETTINGS
def test_generated_lifecycles_fold_incrementally(
    case: tuple[list[Event], str, int], data: st.DataObject,
) -> None:
    events, _, _ = case
    shuffled = data.draw(st.permutations(events))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(events)), max_size=5)))
    chunks = [shuffled[a:b] for a, b in zip([0, *cuts], [*cuts, len(events)], strict=True)]
    assert _incremental(chunks) == _view(events)


def test_a_retry_cycle_reads_active_retrying_queued_active_completed() -> None:
    view = _view(FIXTURE_JOBS["bac7c037-6e67-467d-9550-0c7809b70453"])
    assert [t.state for t in view.history] == [
        "queued", "queued", "active", "retrying", "queued", "queued", "active", "retrying",
        "queued", "queued", "active", "completed",
    ]
    assert [t.attempt for t in view.history] == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]
    assert view.parent_id is None  # Celery's retry messages name the task as its own parent


@pytest.mark.parametrize("skew", [-30.0, -3.0, 3.0, 30.0])
def test_producer_clock_skew_does_not_reorder_a_job(skew: float) -> None:
    events = FIXTURE_JOBS["84538795-293b-495b-9aa7-9798d3b64a40"]  # add(2, 3)
    import msgspec

    skewed = [msgspec.structs.replace(e, timestamp=e.timestamp + skew)
              if e.kind == "job.sent" else e for e in events]
    view = _view(skewed)
    assert view.state == "completed"
    assert [t.kind for t in view.history] == [
        "job.sent", "job.received", "job.started", "job.succeeded"]


def test_a_fold_event_keeps_every_field_the_fold_reads() -> None:
    """fold_event copies an Event's values field by field: the same as msgspec's conversion,
    and the jobs fold the same from either form."""
    for job_id, events in FIXTURE_JOBS.items():
        kept = [fold_event(e) for e in events]
        assert kept == [msgspec.convert(e, FoldEvent, from_attributes=True) for e in events]
        assert fold(job_id, kept) == fold(job_id, events)
