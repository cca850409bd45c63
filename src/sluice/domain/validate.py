"""Checks every unified event must pass before it is stored: types, sizes, NUL bytes."""

from __future__ import annotations

import math
import re
import uuid
from typing import Any, Final

import msgspec

from .dedup import dedup_key
from .events import (
    FRAMEWORKS,
    JOB_KINDS,
    JOB_OTHER,
    KINDS,
    QUEUE_SAMPLED,
    WORKER_KINDS,
    Event,
    Rejection,
    written_by_server,
)

MAX_ID_LEN: Final = 255
MAX_NAME_LEN: Final = 500
# A task name and a queue name share the rollups' primary key, whose btree entries PostgreSQL
# caps near 2.7 kB: names are bounded in UTF-8 bytes too.
MAX_NAME_BYTES: Final = 1000
MAX_TEXT_LEN: Final = 256 * 1024
MAX_EXTENSIONS_BYTES: Final = 64 * 1024
# Nesting of `extensions` (Celery's own fields are flat): deeper structures are refused before
# anything recursive (encoders, str()) walks them.
MAX_EXTENSIONS_DEPTH: Final = 32
# Source timestamps outside this range are nonsense (garbage or a clock years off).
MIN_TIMESTAMP: Final = 946_684_800.0  # 2000-01-01
MAX_FUTURE_SKEW_S: Final = 86_400.0
# Runtimes are summed per minute into float8 rollups: a bound keeps sums finite.
MAX_RUNTIME_S: Final = 1e9
INT4_MAX: Final = 2**31 - 1
INT8_MAX: Final = 2**63 - 1
# Each integer field, bounded by the narrowest column that stores it (int4 columns: jobs.retries
# and its history's attempt, workers.active and pid, queues.consumers).
INT_BOUNDS: Final = {
    "retries": INT4_MAX, "active": INT4_MAX, "pid": INT4_MAX, "consumers": INT4_MAX,
    "processed": INT8_MAX, "depth": INT8_MAX, "count": INT8_MAX, "clock": INT8_MAX,
}
_DEDUP_RE: Final = re.compile(r"^[A-Za-z0-9_.:\-]{8,128}$")

_ID_FIELDS: Final = ("job_id", "hostname", "queue", "parent_id", "root_id", "group_id",
                     "routing_key", "exchange", "sw_ident", "sw_ver", "sw_sys", "eta", "expires",
                     "source")
_TEXT_FIELDS: Final = ("args", "kwargs", "result", "exception", "traceback")
_EXT_ENCODER: Final = msgspec.json.Encoder()


def _extensions_problem(extensions: dict[str, Any]) -> str | None:
    """Why `extensions` cannot be stored (too deep, a NUL, a non-JSON key), or None. Walked
    with an explicit stack: no input can exhaust the interpreter's recursion limit."""
    stack: list[tuple[Any, int]] = [(extensions, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return "extensions must not contain NUL characters"
        elif isinstance(value, dict | list | tuple):
            if depth > MAX_EXTENSIONS_DEPTH:
                return f"extensions nested deeper than {MAX_EXTENSIONS_DEPTH} levels"
            if isinstance(value, dict):
                for key in value:
                    if not isinstance(key, str):
                        return "extensions must be plain JSON values (string keys)"
                    if "\x00" in key:
                        return "extensions must not contain NUL characters"
                stack.extend((v, depth + 1) for v in value.values())
            else:
                stack.extend((v, depth + 1) for v in value)
    return None


def _too_long(value: str, chars: int, max_bytes: int | None = None) -> bool:
    if len(value) > chars:
        return True
    return (max_bytes is not None and len(value) * 4 > max_bytes and not value.isascii()
            and len(value.encode("utf-8", "surrogatepass")) > max_bytes)


def _check_strings(event: Event) -> Rejection | None:
    for field in _ID_FIELDS:
        value = getattr(event, field)
        if value is not None and (len(value) > MAX_ID_LEN or "\x00" in value):
            return Rejection(f"{field} must be at most {MAX_ID_LEN} chars, without NUL", field)
    if event.name is not None and (_too_long(event.name, MAX_NAME_LEN, MAX_NAME_BYTES)
                                   or "\x00" in event.name):
        return Rejection(f"name must be at most {MAX_NAME_LEN} chars ({MAX_NAME_BYTES} "
                         "UTF-8 bytes), without NUL", "name")
    for field in _TEXT_FIELDS:
        value = getattr(event, field)
        if value is not None and (len(value) > MAX_TEXT_LEN or "\x00" in value):
            return Rejection(f"{field} must be at most {MAX_TEXT_LEN} chars, without NUL", field)
    if event.extensions:
        problem = _extensions_problem(event.extensions)
        if problem is not None:
            return Rejection(problem, "extensions")
        try:
            size = len(_EXT_ENCODER.encode(event.extensions))
        except (TypeError, ValueError, OverflowError):  # e.g. msgpack Ext values, huge ints
            return Rejection("extensions must be plain JSON values", "extensions")
        if size > MAX_EXTENSIONS_BYTES:
            return Rejection(f"extensions larger than {MAX_EXTENSIONS_BYTES} bytes", "extensions")
    return None


def _check_numbers(event: Event, now: float) -> Rejection | None:
    ts = event.timestamp
    if not math.isfinite(ts) or ts < MIN_TIMESTAMP or ts > now + MAX_FUTURE_SKEW_S:
        return Rejection("timestamp must be seconds since the epoch, 2000 to now+1d", "timestamp")
    for field in ("freq", "utcoffset"):
        value = getattr(event, field)
        if value is not None and not math.isfinite(value):
            return Rejection(f"{field} must be a finite number", field)
    if event.runtime is not None and not 0.0 <= event.runtime <= MAX_RUNTIME_S:
        return Rejection(f"runtime must be 0 to {MAX_RUNTIME_S:.0e} seconds", "runtime")
    for field, most in INT_BOUNDS.items():
        value = getattr(event, field)
        if value is not None and not 0 <= value <= most:
            return Rejection(f"{field} must be an integer from 0 to {most}", field)
    if event.loadavg is not None and (
        len(event.loadavg) > 3 or not all(math.isfinite(x) for x in event.loadavg)
    ):
        return Rejection("loadavg must be up to 3 finite numbers", "loadavg")
    return None


def _check_subject(event: Event, from_server: bool) -> Rejection | None:
    if event.kind not in KINDS:
        return Rejection(f"unknown kind {event.kind[:60]!r}", "kind")
    if not from_server and written_by_server(event.kind):
        return Rejection(f"{event.kind} events are written by the server only", "kind")
    if event.framework not in FRAMEWORKS:
        return Rejection(f"unknown framework {event.framework[:60]!r}", "framework")
    if event.connection_id is not None:
        try:
            uuid.UUID(event.connection_id)
        except ValueError:
            return Rejection("connection_id must be a UUID", "connection_id")
    if event.kind in JOB_KINDS and not event.job_id:
        return Rejection(f"{event.kind} needs a job_id", "job_id")
    if event.kind in WORKER_KINDS and not event.hostname:
        return Rejection(f"{event.kind} needs a hostname", "hostname")
    if event.kind == QUEUE_SAMPLED and (not event.queue or event.depth is None):
        return Rejection("queue.sampled needs queue and depth", "queue")
    if event.dedup_key and not _DEDUP_RE.match(event.dedup_key):
        return Rejection("dedup_key must be 8-128 chars of [A-Za-z0-9_.:-]", "dedup_key")
    return None


def subject_of(event: Event) -> str | None:
    """The id an event is about: its job, else its worker, else its queue."""
    return event.job_id or event.hostname or event.queue


def with_dedup_key(event: Event) -> Event:
    """The event, with its dedup key derived from its identity when the sender gave none."""
    if event.dedup_key:
        return event
    variant = str(event.extensions.get("celery_type", "")) if event.kind == JOB_OTHER else ""
    key = dedup_key(
        event.kind, subject_of(event), event.hostname, event.clock, event.timestamp, variant
    )
    return msgspec.structs.replace(event, dedup_key=key)


def check_event(event: Event, now: float, *, from_server: bool = False) -> Rejection | None:
    """None when the event may be stored, else why not. Kinds only the server writes pass
    only `from_server` (its own processors), never from a source."""
    return (_check_subject(event, from_server) or _check_numbers(event, now)
            or _check_strings(event))


def parse_event(raw: Any, now: float) -> Event | Rejection:
    """Any decoded JSON value -> a valid Event (dedup key filled in) or a Rejection."""
    if not isinstance(raw, dict):
        return Rejection("event must be a JSON object")
    try:
        event = msgspec.convert(raw, Event)
    except msgspec.ValidationError as exc:
        field = _field_of(str(exc))
        return Rejection(str(exc)[:300], field)
    except RecursionError:  # deeper than the converter goes: past any bound of ours
        return Rejection(f"extensions nested deeper than {MAX_EXTENSIONS_DEPTH} levels",
                         "extensions")
    return check_event(event, now) or with_dedup_key(event)


_PATH_RE: Final = re.compile(r"at `\$\.([A-Za-z_]+)")


def _field_of(message: str) -> str | None:
    match = _PATH_RE.search(message)
    if match:
        return match.group(1)
    missing = re.search(r"missing required field `([A-Za-z_]+)`", message)
    return missing.group(1) if missing else None
