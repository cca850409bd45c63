"""The events of a batch body as separate byte strings, found without decoding the body
whole: when one event cannot be decoded (a lone surrogate escape, nesting deeper than a
decoder's recursion limit), the others still can, and that one is rejected by its index.

Both scanners are iterative (no recursion, whatever the nesting) and strict about the
body's skeleton: anything but `{..., "events": [e0, e1, ...], ...}` gives None (a 400).
"""

from __future__ import annotations

import re
import struct
from typing import Final

import msgspec

# A JSON string (escapes skipped whole), a run of openers, a run of closers, or a separator.
_JSON_TOKEN: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[{]+|[\]}]+|[,:]')
_JSON_SKELETON: Final = msgspec.json.Decoder(dict[str, object])


_OPENERS: Final = frozenset(b"[{")
_CLOSERS: Final = frozenset(b"]}")


def json_event_spans(body: bytes) -> list[bytes] | None:
    """The raw events of a JSON body `{"events": [...]}`, or None if it is not that shape."""
    depth = 0
    last_string: bytes | None = None  # the latest string at depth 1
    key: bytes | None = None  # the key whose value comes next at depth 1
    region: int | None = None  # where the current event began (inside the events array)
    bounds: tuple[int, int] | None = None  # offsets of the events array's brackets
    cuts: list[tuple[int, int]] = []
    for m in _JSON_TOKEN.finditer(body):
        token = m.group()
        first = token[0]
        if first in _OPENERS:
            if bounds is None and region is None and depth == 1 and first == 0x5b \
                    and key == b'"events"':
                region = m.start() + 1
                bounds = (m.start(), -1)
            depth += len(token)
        elif first in _CLOSERS:
            if region is not None and 0 <= depth - 2 < len(token):  # the run closes the array
                end = m.start() + depth - 2
                if body[end] != 0x5d or bounds is None:
                    return None
                cuts.append((region, end))
                region = None
                bounds = (bounds[0], end)
            depth -= len(token)
            if depth < 0:
                return None
        elif token == b",":
            if region is not None and depth == 2:
                cuts.append((region, m.start()))
                region = m.end()
        elif token == b":":
            if depth == 1:
                key = last_string
        elif depth == 1:
            last_string = token
    if bounds is None or bounds[1] < 0 or depth != 0:
        return None
    events = [body[a:b].strip() for a, b in cuts]
    if events == [b""]:
        events = []
    if not all(events):
        return None
    # Scalars were not tokens: the skeleton, events replaced by nulls, must decode, so that
    # nothing outside the events is malformed.
    skeleton = b"".join([body[:bounds[0]], b"[", b",".join(b"null" for _ in events), b"]",
                         body[bounds[1] + 1:]])
    try:
        outer = _JSON_SKELETON.decode(skeleton)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return None
    listed = outer.get("events")
    if not isinstance(listed, list) or len(listed) != len(events):
        return None
    return events


# MessagePack: for each first byte, (bytes of fixed payload, bytes of a length prefix,
# children per length unit). Built once; fix* ranges are handled in `_msgpack_head`.
_FIXED: Final = {0xc0: 0, 0xc2: 0, 0xc3: 0, 0xca: 4, 0xcb: 8, 0xcc: 1, 0xcd: 2, 0xce: 4,
                 0xcf: 8, 0xd0: 1, 0xd1: 2, 0xd2: 4, 0xd3: 8, 0xd4: 2, 0xd5: 3, 0xd6: 5,
                 0xd7: 9, 0xd8: 17}
_SIZED: Final = {0xc4: 1, 0xc5: 2, 0xc6: 4, 0xd9: 1, 0xda: 2, 0xdb: 4}  # bin, str: length
_EXT: Final = {0xc7: 1, 0xc8: 2, 0xc9: 4}  # ext: length, then a type byte
_CONTAINERS: Final = {0xdc: (2, 1), 0xdd: (4, 1), 0xde: (2, 2), 0xdf: (4, 2)}
_UINT: Final = {1: struct.Struct(">B"), 2: struct.Struct(">H"), 4: struct.Struct(">I")}


class _Malformed(Exception):
    pass


def _msgpack_head(body: bytes, at: int) -> tuple[int, int]:
    """(offset after the object's header and payload, its children) of the object at `at`."""
    if at >= len(body):
        raise _Malformed
    b = body[at]
    if b <= 0x7f or b >= 0xe0:
        return at + 1, 0
    if b <= 0x8f:
        return at + 1, 2 * (b & 0x0f)
    if b <= 0x9f:
        return at + 1, b & 0x0f
    if b <= 0xbf:
        return at + 1 + (b & 0x1f), 0
    if b in _FIXED:
        return at + 1 + _FIXED[b], 0
    if b in _SIZED:
        n = _SIZED[b]
        (length,) = _UINT[n].unpack_from(body, at + 1)
        return at + 1 + n + length, 0
    if b in _EXT:
        n = _EXT[b]
        (length,) = _UINT[n].unpack_from(body, at + 1)
        return at + 2 + n + length, 0
    if b in _CONTAINERS:
        n, per = _CONTAINERS[b]
        (count,) = _UINT[n].unpack_from(body, at + 1)
        return at + 1 + n, count * per
    raise _Malformed  # 0xc1: never used


def _msgpack_skip(body: bytes, at: int) -> int:
    """The offset after the object at `at` (children counted, not recursed into)."""
    pending = 1
    while pending:
        at, children = _msgpack_head(body, at)
        pending += children - 1
        if at > len(body) or pending > len(body) - at:  # more objects than bytes left
            raise _Malformed
    return at


def _key(raw: bytes) -> object:
    try:
        return msgspec.msgpack.decode(raw) if len(raw) < 64 else None
    except (msgspec.DecodeError, RecursionError):
        return None


def msgpack_event_spans(body: bytes) -> list[bytes] | None:
    """The raw events of a MessagePack body {"events": [...]}, or None if not that shape."""
    try:
        at, children = _msgpack_head(body, 0)
        if not 0x80 <= body[0] <= 0x8f and body[0] not in (0xde, 0xdf):
            return None
        events: list[bytes] | None = None
        for _ in range(children // 2):
            key_end = _msgpack_skip(body, at)
            key = _key(body[at:key_end])
            at = key_end
            if key == "events" and events is None:
                head, count = _msgpack_head(body, at)
                if not 0x90 <= body[at] <= 0x9f and body[at] not in (0xdc, 0xdd):
                    return None
                at, events = head, []
                for _ in range(count):
                    end = _msgpack_skip(body, at)
                    events.append(body[at:end])
                    at = end
            else:
                at = _msgpack_skip(body, at)
        if at != len(body):
            return None
        return events
    except (_Malformed, struct.error, IndexError):
        return None
