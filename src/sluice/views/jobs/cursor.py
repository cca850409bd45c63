"""The job list's cursor: opaque to clients, but only an encoding of the last row's sort key
(first_seen_at, job_id)."""

from __future__ import annotations

import base64
import binascii
import datetime as dt

import msgspec

from .._sql import EPOCH


class InvalidCursor(ValueError):
    """A cursor that this server did not issue (or that was altered)."""


def encode_cursor(first_seen_at: dt.datetime, job_id: str) -> str:
    micros = (first_seen_at - EPOCH) // dt.timedelta(microseconds=1)  # exact, no float
    raw = msgspec.json.encode([micros, job_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        micros, job_id = msgspec.json.decode(raw, type=tuple[int, str])
        if "\x00" in job_id:  # no job id holds one: not a cursor of ours
            raise ValueError("NUL in a cursor")
        return EPOCH + dt.timedelta(microseconds=micros), job_id
    except (binascii.Error, msgspec.DecodeError, ValueError, OverflowError) as exc:
        raise InvalidCursor("not a cursor issued by this API") from exc
