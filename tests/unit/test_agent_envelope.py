"""Kombu envelope decoding against real Celery 5.7 traffic, and against bad input."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path
from typing import Any

import msgspec
import pytest

from sluice.agent.envelope import Undecodable, decode_body, decode_envelope
from sluice.agent.forward import Forwarder
from sluice.agent.health import Health
from sluice.domain.celery import normalize
from sluice.domain.events import Event
from sluice.domain.privacy import strip
from tests.conftest import FIXTURES

PUBSUB = FIXTURES / "celery-5.7-redis-pubsub.jsonl"
EVENTS = FIXTURES / "celery-5.7-events.jsonl"


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class ListSink:
    """A stand-in for the Transport in decoder unit tests (same two methods)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def submit(self, event: Event) -> None:
        self.events.append(event)

    def stats(self) -> dict[str, int]:
        return {"sent": len(self.events)}


def _envelope(body: Any, *, encoding: str | None = "base64",
              content_type: str = "application/json") -> bytes:
    raw = json.dumps(body).encode()
    props: dict[str, Any] = {"delivery_info": {"exchange": "celeryev", "routing_key": "x"}}
    if encoding == "base64":
        props["body_encoding"] = "base64"
        text = base64.b64encode(raw).decode()
    else:
        text = raw.decode()
    return json.dumps({"body": text, "content-type": content_type, "headers": {},
                       "properties": props}).encode()


def test_every_fixture_envelope_decodes_to_exactly_the_fixture_events() -> None:
    decoded = [e for msg in _lines(PUBSUB) for e in decode_envelope(msg["data"])]
    assert decoded == _lines(EVENTS)


def test_fixture_envelopes_as_bytes_decode_alike() -> None:
    for msg in _lines(PUBSUB):
        assert decode_envelope(msg["data"].encode()) == decode_envelope(msg["data"])


def test_forwarder_sends_the_normalized_fixture_events_in_order() -> None:
    sink, health = ListSink(), Health()
    forward = Forwarder(sink, health, "conn-1")
    for msg in _lines(PUBSUB):
        forward.envelope(msg["data"].encode())
    # stripped of arguments and results: the agent runs without --capture-args
    expected = [strip(normalize(e, "conn-1", source="agent")) for e in _lines(EVENTS)]
    assert sink.events == expected
    assert health.events_in == len(expected) and health.undecodable == 0
    assert len({e.dedup_key for e in sink.events}) == len(expected)


def test_task_multi_bodies_are_lists() -> None:
    multi = [m for m in _lines(PUBSUB) if m["channel"].endswith("task.multi")]
    assert multi and all(len(decode_envelope(m["data"])) >= 1 for m in multi)


def test_plain_body_without_body_encoding() -> None:
    event = {"type": "worker-heartbeat", "hostname": "w@h", "timestamp": 1.5e9, "clock": 3}
    assert decode_envelope(_envelope(event, encoding=None)) == [event]
    assert decode_envelope(_envelope([event, event])) == [event, event]


def test_msgpack_bodies() -> None:
    event = {"type": "task-started", "uuid": "u1", "timestamp": 1.5e9}
    packed = msgspec.msgpack.encode(event)
    assert decode_body(packed, "application/x-msgpack") == [event]


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"not json", "envelope not a kombu JSON envelope"),
        (b'{"no": "body"}', "envelope not a kombu JSON envelope"),
        (b"[1, 2]", "envelope not a kombu JSON envelope"),
        (json.dumps({"body": "!!!", "properties": {"body_encoding": "base64"}}).encode(),
         "body not valid base64"),
        (json.dumps({"body": "eA==", "properties": {"body_encoding": "base64"}}).encode(),
         "body not valid application/json"),
        (json.dumps({"body": "{}", "properties": {"body_encoding": "rot13"}}).encode(),
         "body_encoding rot13"),
        (_envelope({"a": 1}, content_type="application/x-python-serialize"),
         "content-type application/x-python-serialize"),
        (_envelope(42), "body not an event or a list of events"),
        (_envelope([{"a": 1}, 2]), "body not an event or a list of events"),
    ],
)
def test_undecodable_messages_raise_with_a_kind(data: bytes, kind: str) -> None:
    with pytest.raises(Undecodable) as info:
        decode_envelope(data)
    assert info.value.kind == kind


def test_undecodable_is_counted_always_and_logged_once_per_kind(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink, health = ListSink(), Health()
    forward = Forwarder(sink, health, None)
    with caplog.at_level(logging.WARNING, logger="sluice.agent"):
        for _ in range(5):
            forward.envelope(b"garbage")
            forward.envelope(_envelope(42))
            forward.envelope(_envelope({"type": "task-started"}))  # no uuid: rejected
    assert health.undecodable == 15
    assert len(health.undecodable_by_kind) == 3
    assert len([r for r in caplog.records if "undecodable" in r.getMessage()]) == 3
    assert sink.events == []
    forward.envelope(_envelope({"type": "worker-heartbeat", "hostname": "w", "timestamp": 2e9}))
    assert len(sink.events) == 1
