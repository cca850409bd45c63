"""The Celery normalizer is total and keeps everything: fixtures, hostile dicts, new types."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.domain import celery
from sluice.domain.celery import normalize
from sluice.domain.events import EVENT_DECODER, EVENT_ENCODER, Event, Rejection
from tests.conftest import FIXTURES
from tests.helpers import load_celery_events

RAW = load_celery_events(FIXTURES / "celery-5.7-events.jsonl")


def test_every_fixture_event_normalizes_and_round_trips() -> None:
    kinds = set()
    for raw in RAW:
        event = normalize(raw, "6f1c3a52-1f8a-4b51-9f35-5b0d1c9a7e11", now=time.time())
        assert isinstance(event, Event), (raw, event)
        assert EVENT_DECODER.decode(EVENT_ENCODER.encode(event)) == event
        kinds.add(event.kind)
    assert kinds == {"job.sent", "job.received", "job.started", "job.succeeded", "job.failed",
                     "job.retried", "job.revoked", "job.rejected", "worker.online",
                     "worker.heartbeat", "worker.offline"}


def test_fast_and_careful_paths_agree_on_real_traffic() -> None:
    for raw in RAW:
        assert celery._fast(raw, None) == celery._build(raw, None)


# keys a Celery dict may carry that are unified field names, or Celery's renamed ones
_TRICKY_KEYS = ["kind", "framework", "job_id", "connection_id", "dedup_key", "extensions",
                "count", "depth", "consumers", "group", "group_id", "uuid", "clock",
                "timestamp", "hostname", "retries", "loadavg", "type", "x_custom"]
_VALUES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                    st.text(max_size=8), st.lists(st.floats(allow_nan=False), max_size=3))


@settings(max_examples=400, deadline=None)
@given(base=st.sampled_from(RAW), extra=st.dictionaries(st.sampled_from(_TRICKY_KEYS), _VALUES,
                                                           max_size=4))
def test_the_fast_path_gives_the_careful_paths_event_or_declines(
        base: dict[str, Any], extra: dict[str, Any]) -> None:
    raw = {**base, **extra}
    fast = celery._fast(raw, "c")
    if fast is not None:  # otherwise normalize takes the careful path
        assert fast == celery._build(raw, "c")  # which would not raise _Bad either


def test_dedup_key_is_the_same_after_a_json_round_trip() -> None:
    import json

    for raw in RAW:
        again = json.loads(json.dumps(raw))
        a, b = normalize(raw), normalize(again)
        assert isinstance(a, Event) and isinstance(b, Event)
        assert a.dedup_key == b.dedup_key


_TIMES = st.floats(min_value=0, max_value=4e9, allow_nan=False)


@given(a=_TIMES, b=_TIMES, clock=st.one_of(st.none(), st.integers(0, 2**40)),
       host=st.one_of(st.none(), st.text(max_size=20)))
def test_dedup_keys_sort_by_source_time_and_differ_by_identity(
        a: float, b: float, clock: int | None, host: str | None) -> None:
    """Keys lead with the source time, so the log's unique index takes new keys at its
    recent edge; the identity (time included, to the bit) still tells events apart."""
    from sluice.domain.dedup import dedup_key

    key_a = dedup_key("job.sent", "j", host, clock, a)
    key_b = dedup_key("job.sent", "j", host, clock, b)
    assert len(key_a) == len(key_b) == 38
    if int(a * 1e6) < int(b * 1e6):
        assert key_a < key_b
    assert (key_a == key_b) == (a == b)
    assert key_a != dedup_key("job.received", "j", host, clock, a)
    assert key_a != dedup_key("job.sent", "k", host, clock, a)


def test_unknown_fields_and_types_are_kept_in_extensions() -> None:
    raw = {**RAW[3], "x_custom": {"a": [1, 2]}, "weird": object()}
    event = normalize(raw)
    assert isinstance(event, Event)
    assert event.extensions["x_custom"] == {"a": [1, 2]}
    assert event.extensions["weird"].startswith("<object object")
    other = normalize({"type": "task-frobnicated", "uuid": "abc", "timestamp": 1.8e9})
    assert isinstance(other, Event)
    assert (other.kind, other.extensions["celery_type"]) == ("job.other", "task-frobnicated")
    cancelled = normalize({"type": "task-cancelled", "uuid": "abc", "timestamp": 1.8e9})
    assert isinstance(cancelled, Event) and cancelled.kind == "job.interrupted"


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"uuid": "x", "timestamp": 1.8e9}, "type"),
        ({"type": "task-sent", "timestamp": 1.8e9}, "uuid"),
        ({"type": "task-sent", "uuid": "x"}, "timestamp"),
        ({"type": "task-sent", "uuid": "x", "timestamp": "yesterday"}, "timestamp"),
        ({"type": "task-sent", "uuid": "x", "timestamp": 1.8e9, "retries": "two"}, "retries"),
        ({"type": "task-sent", "uuid": "x", "timestamp": 1.8e9, "clock": 1.5}, "clock"),
        ({"type": "worker-heartbeat", "timestamp": 1.8e9, "hostname": "h", "loadavg": "hi"},
         "loadavg"),
        ({"type": "task-sent", "uuid": "x", "timestamp": 1.8e9, "name": ["a"]}, "name"),
    ],
)
def test_malformed_events_are_rejected_naming_the_field(raw: dict[str, Any], field: str) -> None:
    result = normalize(raw)
    assert isinstance(result, Rejection)
    assert result.field == field


def test_validation_with_a_clock_rejects_nonsense_and_nul() -> None:
    now = time.time()
    future = normalize({"type": "task-sent", "uuid": "x", "timestamp": now + 10 * 86400}, now=now)
    assert isinstance(future, Rejection) and future.field == "timestamp"
    nul = normalize({"type": "task-sent", "uuid": "x", "timestamp": now, "name": "a\x00b"},
                    now=now)
    assert isinstance(nul, Rejection) and nul.field == "name"
    huge = normalize({"type": "task-sent", "uuid": "x" * 300, "timestamp": now}, now=now)
    assert isinstance(huge, Rejection) and huge.field == "job_id"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                               max_size=3),
    max_leaves=10,
)
celery_keys = st.sampled_from(["type", "uuid", "timestamp", "hostname", "clock", "retries",
                               "name", "args", "loadavg", "runtime", "eta", "queue", "x"])


@given(st.dictionaries(celery_keys, json_values | st.sampled_from(["task-sent", "task-failed",
                                                                    "worker-online"])))
@settings(max_examples=400, deadline=None)
def test_normalize_is_total(raw: dict[str, Any]) -> None:
    result = normalize(raw, now=time.time())
    assert isinstance(result, Event | Rejection)


@given(st.one_of(json_values, st.binary(), st.tuples(st.integers())))
@settings(max_examples=200, deadline=None)
def test_normalize_is_total_on_non_dicts(raw: object) -> None:
    assert isinstance(normalize(raw), Event | Rejection)
