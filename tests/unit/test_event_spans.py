"""Batch bodies split into their events without decoding them whole (iteratively)."""

from __future__ import annotations

import msgspec
import pytest

from sluice.api.event_spans import json_event_spans, msgpack_event_spans


@pytest.mark.parametrize(("body", "events"), [
    (b'{"events":[]}', []),
    (b' { "events" : [ ] } ', []),
    (b'{"events":[1, "a,]}" ,{"x":[1,{"y":"]}\\""}]}]}',
     [b"1", b'"a,]}"', b'{"x":[1,{"y":"]}\\""}]}']),
    (b'{"a":{"events":[9]},"x":"events","events":[[],{}],"z":null}', [b"[]", b"{}"]),
    (b'{"events":[{"a":"\\ud800"},{"b":' + b"[" * 5000 + b"]" * 5000 + b"}]}",
     [b'{"a":"\\ud800"}', b'{"b":' + b"[" * 5000 + b"]" * 5000 + b"}"]),
])
def test_json_events_are_found(body: bytes, events: list[bytes]) -> None:
    assert json_event_spans(body) == events


@pytest.mark.parametrize("body", [b"{oops", b"[1]", b'{"events":3}', b'{"events":[1,]}',
                                  b'{"events":[1]]}', b'{"events":[1]} x', b'{"events":[1'])
def test_json_bodies_of_another_shape_are_refused(body: bytes) -> None:
    assert json_event_spans(body) is None


def test_msgpack_events_are_found_at_any_depth() -> None:
    items = [1, "a", {"x": [1, 2.5, None, b"\x00"]}, msgspec.msgpack.Ext(3, b"zz")]
    body = msgspec.msgpack.encode({"z": [1], "events": items, "y": {"k": "v"}})
    spans = msgpack_event_spans(body)
    assert spans is not None and [msgspec.msgpack.decode(s) for s in spans[:3]] == items[:3]
    deep = b"\x81\xa1a" + b"\x91" * 100_000 + b"\x90"
    assert msgpack_event_spans(b"\x81\xa6events\x92" + deep + b"\x01") == [deep, b"\x01"]


@pytest.mark.parametrize("body", [b"\x91\x01", b"\x81\xa6events\x01", b"\x81\xa6events\x92\x01",
                                  b"\x81\xa6events\x91\x01\x01",
                                  b"\x81\xa6events\xdd\xff\xff\xff\xff", b"\xc1"])
def test_msgpack_bodies_of_another_shape_are_refused(body: bytes) -> None:
    assert msgpack_event_spans(body) is None
