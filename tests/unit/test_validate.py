"""Unified events from the wire: hostile input is rejected with a reason naming the field."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.domain.dedup import dedup_key
from sluice.domain.events import Event, Rejection
from sluice.domain.validate import check_event, parse_event

NOW = time.time()
GOOD = {"kind": "job.sent", "timestamp": NOW, "job_id": "abc", "name": "app.t"}


def test_a_good_event_gets_its_dedup_key_derived() -> None:
    event = parse_event(dict(GOOD), NOW)
    assert isinstance(event, Event)
    assert event.dedup_key == dedup_key("job.sent", "abc", None, None, NOW)


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"kind": "job.exploded"}, "kind"),
        ({"kind": 7}, "kind"),
        ({"timestamp": "now"}, "timestamp"),
        ({"timestamp": float("nan")}, "timestamp"),
        ({"timestamp": 12.0}, "timestamp"),
        ({"job_id": None}, "job_id"),
        ({"job_id": "x" * 10_000}, "job_id"),
        ({"name": "n" * 100_000}, "name"),
        ({"traceback": "t" * 1_000_000}, "traceback"),
        ({"name": "bad\x00name"}, "name"),
        ({"extensions": {"k": "v\x00"}}, "extensions"),
        ({"connection_id": "not-a-uuid"}, "connection_id"),
        ({"retries": -1}, "retries"),
        ({"retries": 2**70}, "retries"),
        ({"retries": "1"}, "retries"),
        ({"dedup_key": "short"}, "dedup_key"),
        ({"dedup_key": "'; DROP TABLE events; --"}, "dedup_key"),
        ({"framework": "rq"}, "framework"),
        ({"loadavg": [1.0, 2.0, 3.0, 4.0]}, "loadavg"),
    ],
)
def test_hostile_events_are_rejected(patch: dict[str, Any], field: str) -> None:
    result = parse_event({**GOOD, **patch}, NOW)
    assert isinstance(result, Rejection), result
    assert result.field == field, result


def test_extensions_that_are_not_json_are_rejected_not_raised() -> None:
    import msgspec

    event = msgspec.convert({**GOOD, "dedup_key": "k" * 16}, Event)
    odd = msgspec.structs.replace(event, extensions={"ext": msgspec.msgpack.Ext(1, b"x"),
                                                     "big": 2**70})
    result = check_event(odd, NOW)
    assert isinstance(result, Rejection) and result.field == "extensions"


def test_missing_required_fields_and_non_objects() -> None:
    missing = parse_event({"kind": "job.sent"}, NOW)
    assert isinstance(missing, Rejection) and missing.field == "timestamp"
    assert isinstance(parse_event([1, 2], NOW), Rejection)
    assert isinstance(parse_event("event", NOW), Rejection)


@given(st.dictionaries(st.sampled_from(["kind", "timestamp", "job_id", "hostname", "queue",
                                        "depth", "extensions", "retries", "dedup_key"]),
                       st.none() | st.integers() | st.floats() | st.text(max_size=30)
                       | st.lists(st.integers(), max_size=3)))
@settings(max_examples=400, deadline=None)
def test_parse_event_is_total(raw: dict[str, Any]) -> None:
    assert isinstance(parse_event(raw, NOW), Event | Rejection)


def test_every_kind_in_a_server_namespace_is_refused_from_sources(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """One rule: a kind added later in a server namespace (an alert, say) is refused from a
    source without a check of its own, and accepted from the server's own processors."""
    from sluice.domain import events, validate

    now = time.time()
    monkeypatch.setattr(validate, "KINDS", events.KINDS | {"alert.fired", "audit.login"})
    for kind in ("command.retry", "command.revoke", "alert.fired", "audit.login"):
        event = Event(kind=kind, timestamp=now, job_id="j1")
        rejection = check_event(event, now)
        assert rejection is not None and rejection.field == "kind", kind
        assert check_event(event, now, from_server=True) is None, kind
        assert events.stream_of(kind) is events.Stream.SYSTEM
    for kind in sorted(events.JOB_KINDS | events.WORKER_KINDS):
        assert not events.written_by_server(kind)
        assert events.stream_of(kind) is events.Stream.TRAFFIC


@pytest.mark.parametrize("levels", [33, 329, 5_000, 200_000])
def test_nesting_is_bounded_without_recursion(levels: int) -> None:
    nested: Any = []
    for _ in range(levels - 2):
        nested = [nested]
    event = Event(kind="job.sent", timestamp=NOW, job_id="j", extensions={"a": nested})
    result = check_event(event, NOW)
    assert isinstance(result, Rejection) and result.field == "extensions"
    assert "nested" in result.reason


@pytest.mark.parametrize(("field", "ok", "too_big"), [
    ("retries", 2**31 - 1, 2**31), ("active", 2**31 - 1, 2**31), ("pid", 2**31 - 1, 2**31),
    ("consumers", 2**31 - 1, 2**31), ("processed", 2**63 - 1, 2**63),
    ("depth", 2**63 - 1, 2**63), ("runtime", 1e9, 1e308),
])
def test_numbers_are_bounded_by_their_column(field: str, ok: float, too_big: float) -> None:
    base = {"kind": "queue.sampled", "timestamp": NOW, "queue": "q", "depth": 0}
    assert isinstance(parse_event({**base, field: ok}, NOW), Event)
    rejected = parse_event({**base, field: too_big}, NOW)
    assert isinstance(rejected, Rejection) and rejected.field == field
