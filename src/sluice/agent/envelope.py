"""Kombu message envelopes -> Celery event dicts.

On Redis, kombu publishes each event as a JSON envelope whose `body` is base64 when
`properties.body_encoding` is "base64"; on AMQP the body arrives bare. Either way the body
is one event dict, or a list of them on `task.multi` (workers buffer task events).
"""

from __future__ import annotations

import binascii
from typing import Any, Final

import msgspec

_JSON_TYPES: Final = frozenset({"application/json", "text/json"})
_MSGPACK_TYPES: Final = frozenset({"application/x-msgpack", "application/msgpack"})


class Undecodable(Exception):
    """A message that is not Celery events; `kind` groups them for counting and logging."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.detail = detail


class _Properties(msgspec.Struct):
    body_encoding: str | None = None


class _Envelope(msgspec.Struct, rename={"content_type": "content-type"}):
    # Typed decoding skips the fields we do not need (headers, delivery_info): faster.
    body: str
    content_type: str = "application/json"
    properties: _Properties = msgspec.field(default_factory=_Properties)


_ENVELOPE_DECODER: Final = msgspec.json.Decoder(_Envelope)
_JSON_DECODER: Final = msgspec.json.Decoder()
_MSGPACK_DECODER: Final = msgspec.msgpack.Decoder()


def decode_body(body: bytes | str, content_type: str) -> list[dict[str, Any]]:
    """A message body -> its event dicts. Pickle and other serializers are refused."""
    ctype = content_type.split(";", 1)[0].strip().lower()
    try:
        if ctype in _JSON_TYPES:
            value = _JSON_DECODER.decode(body)
        elif ctype in _MSGPACK_TYPES:
            value = _MSGPACK_DECODER.decode(body.encode() if isinstance(body, str) else body)
        else:
            raise Undecodable(f"content-type {ctype[:60]}")
    except (msgspec.DecodeError, UnicodeError) as exc:
        raise Undecodable("body not valid " + ctype, str(exc)) from None
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list) and all(isinstance(item, dict) for item in value):
        return value
    raise Undecodable("body not an event or a list of events", type(value).__name__)


def decode_envelope(data: bytes | str) -> list[dict[str, Any]]:
    """One Redis pub/sub message (a kombu JSON envelope) -> its event dicts."""
    try:
        envelope = _ENVELOPE_DECODER.decode(data)
    except msgspec.DecodeError as exc:
        raise Undecodable("envelope not a kombu JSON envelope", str(exc)) from None
    encoding = envelope.properties.body_encoding
    body: bytes | str = envelope.body
    if encoding == "base64":
        try:
            body = binascii.a2b_base64(envelope.body, strict_mode=True)
        except (binascii.Error, ValueError) as exc:
            raise Undecodable("body not valid base64", str(exc)) from None
    elif encoding is not None:
        raise Undecodable(f"body_encoding {encoding[:40]}")
    return decode_body(body, envelope.content_type)
