"""Ingest bodies: read with limits (incremental gunzip, zip-bomb guard), decode, validate.

Limits per batch: MAX_EVENTS events and MAX_BYTES bytes once decompressed. A gzip body is
inflated chunk by chunk with a cap on the output, so a bomb stops one byte past the limit.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

import msgspec

from sluice.domain.events import Event, Rejection
from sluice.domain.validate import check_event, parse_event, with_dedup_key

from .errors import ApiError
from .event_spans import json_event_spans, msgpack_event_spans

MAX_EVENTS: Final = 5_000
MAX_BYTES: Final = 5 * 1024 * 1024
# Compressed bodies are at most a little larger than their content (incompressible input).
MAX_WIRE_BYTES: Final = MAX_BYTES + 64 * 1024
JSON: Final = "json"
MSGPACK: Final = "msgpack"
_JSON_TYPES: Final = frozenset({"application/json"})
_MSGPACK_TYPES: Final = frozenset(
    {"application/msgpack", "application/x-msgpack", "application/vnd.msgpack"}
)
_GZIP: Final = frozenset({"gzip", "x-gzip"})
_IDENTITY: Final = frozenset({"", "identity"})
MISMATCH: Final = "connection_id does not match the API key's connection"


class _TypedBatch(msgspec.Struct):
    events: list[Event]


def _no_ext(code: int, data: memoryview) -> Any:
    # MessagePack extension types have no JSON form, so no place in an event: refuse them.
    raise ValueError(f"MessagePack extension type {code} is not supported")


_TYPED: Final[dict[str, Callable[[bytes], _TypedBatch]]] = {
    JSON: msgspec.json.Decoder(_TypedBatch).decode,
    MSGPACK: msgspec.msgpack.Decoder(_TypedBatch, ext_hook=_no_ext).decode,
}
_UNTYPED: Final[dict[str, Callable[[bytes], Any]]] = {
    JSON: msgspec.json.Decoder().decode,
    MSGPACK: msgspec.msgpack.Decoder(ext_hook=_no_ext).decode,
}


_SPANS: Final[dict[str, Callable[[bytes], list[bytes] | None]]] = {
    JSON: json_event_spans,
    MSGPACK: msgpack_event_spans,
}


def body_format(content_type: str | None) -> str:
    """JSON or MSGPACK from a Content-Type header; 415 for anything else."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media in _JSON_TYPES or (media.startswith("application/") and media.endswith("+json")):
        return JSON
    if media in _MSGPACK_TYPES:
        return MSGPACK
    raise ApiError(415, "unsupported_media_type",
                   "Content-Type must be application/json or application/msgpack")


def is_gzip(content_encoding: str | None) -> bool:
    coding = (content_encoding or "").strip().lower()
    if coding in _GZIP:
        return True
    if coding in _IDENTITY:
        return False
    raise ApiError(415, "unsupported_media_type", "Content-Encoding must be gzip or identity")


def _too_large() -> ApiError:
    return ApiError(413, "too_large",
                    f"a batch is at most {MAX_EVENTS} events and {MAX_BYTES} bytes decompressed")


async def read_body(chunks: AsyncIterator[bytes], gzip: bool) -> bytes:
    """The whole (decompressed) body; 413 past MAX_BYTES, 400 on a corrupt gzip stream."""
    parts: list[bytes] = []
    total = 0
    if not gzip:
        async for chunk in chunks:
            total += len(chunk)
            if total > MAX_BYTES:
                raise _too_large()
            parts.append(chunk)
        return b"".join(parts)
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    wire = 0
    try:
        async for chunk in chunks:
            wire += len(chunk)
            if wire > MAX_WIRE_BYTES:
                raise _too_large()
            data = chunk
            while data:
                if inflater.eof:  # a multi-member gzip body: the next member starts here
                    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
                # Never inflate more than one byte past the limit, whatever the ratio.
                out = inflater.decompress(data, MAX_BYTES - total + 1)
                total += len(out)
                if total > MAX_BYTES:
                    raise _too_large()
                parts.append(out)
                data = inflater.unconsumed_tail or (inflater.unused_data if inflater.eof
                                                    else b"")
    except zlib.error as exc:
        raise ApiError(400, "bad_request", f"corrupt gzip body: {exc}") from None
    if wire and not inflater.eof:
        raise ApiError(400, "bad_request", "truncated gzip body")
    return b"".join(parts)


def _undecodable(fmt: str) -> ApiError:
    name = "JSON" if fmt == JSON else "MessagePack"
    return ApiError(400, "bad_request", f"the body is not valid {name}")


def _own(event: Event, connection_id: str, now: float) -> Event | Rejection:
    if event.connection_id is not None and event.connection_id != connection_id:
        return Rejection(MISMATCH, "connection_id")
    try:
        return check_event(event, now) or with_dedup_key(event)
    except (TypeError, ValueError) as exc:  # e.g. extensions with no JSON form
        return Rejection(f"invalid event: {str(exc)[:200]}")


def _parse(item: Any, connection_id: str, now: float) -> Event | Rejection:
    try:
        parsed = parse_event(item, now)
    except (TypeError, ValueError) as exc:  # e.g. MessagePack map keys JSON cannot hold
        return Rejection(f"invalid event: {str(exc)[:200]}")
    if isinstance(parsed, Event) and parsed.connection_id not in (None, connection_id):
        return Rejection(MISMATCH, "connection_id")
    return parsed


def decode_batch(body: bytes, fmt: str, connection_id: str, now: float) -> (
    list[Event | Rejection]
):
    """Body -> one Event or Rejection per input event, in order.

    400 if undecodable, 422 if not `{"events": [...]}`, 413 past MAX_EVENTS. An event naming
    another connection is rejected (the batch goes on): a key writes only into its own.
    The fast path decodes straight into Event structs; on any shape error it falls back to
    `parse_event` per item, which gives the same verdicts with a reason per event; a body
    that does not decode whole is decoded event by event (`_decode_each`).
    """
    if not body:
        raise ApiError(400, "bad_request", "empty body; expected {\"events\": [...]}")
    try:
        typed = _TYPED[fmt](body)
    except msgspec.ValidationError:
        typed = None
    except (msgspec.DecodeError, RecursionError, ValueError):
        return _decode_each(body, fmt, connection_id, now)
    if typed is not None:
        if len(typed.events) > MAX_EVENTS:
            raise _too_large()
        return [_own(e, connection_id, now) for e in typed.events]
    try:
        raw: Any = _UNTYPED[fmt](body)
    except (msgspec.DecodeError, RecursionError, ValueError):
        return _decode_each(body, fmt, connection_id, now)
    if not isinstance(raw, dict):
        raise ApiError(422, "invalid", "the body must be an object {\"events\": [...]}")
    events = raw.get("events")
    if not isinstance(events, list):
        raise ApiError(422, "invalid", "events must be a list of event objects", field="events")
    if len(events) > MAX_EVENTS:
        raise _too_large()
    return [_parse(item, connection_id, now) for item in events]


def _decode_each(body: bytes, fmt: str, connection_id: str, now: float) -> (
    list[Event | Rejection]
):
    """A body that does not decode whole: if its skeleton is `{"events": [...]}`, each event
    is decoded on its own, and the ones that cannot be are rejected by index; else 400."""
    spans = _SPANS[fmt](body)
    if spans is None:
        raise _undecodable(fmt)
    if len(spans) > MAX_EVENTS:
        raise _too_large()
    name = "JSON" if fmt == JSON else "MessagePack"
    out: list[Event | Rejection] = []
    for span in spans:
        try:
            item = _UNTYPED[fmt](span)
        except RecursionError:
            out.append(Rejection("the event is nested too deeply to decode"))
        except (msgspec.DecodeError, ValueError) as exc:
            out.append(Rejection(f"the event is not valid {name} (malformed, or a string "
                                 f"that is not valid Unicode): {str(exc)[:200]}"))
        else:
            out.append(_parse(item, connection_id, now))
    return out
