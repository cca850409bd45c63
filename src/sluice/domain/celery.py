"""Celery event dicts -> unified events. Total: every input gives an Event or a Rejection."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

import msgspec

from . import events as ev
from .dedup import dedup_key
from .events import Event, Rejection
from .validate import check_event

CELERY_KINDS: Final[dict[str, str]] = {
    "task-sent": ev.JOB_SENT,
    "task-received": ev.JOB_RECEIVED,
    "task-started": ev.JOB_STARTED,
    "task-succeeded": ev.JOB_SUCCEEDED,
    "task-failed": ev.JOB_FAILED,
    "task-retried": ev.JOB_RETRIED,
    "task-revoked": ev.JOB_REVOKED,
    "task-rejected": ev.JOB_REJECTED,
    "task-cancelled": ev.JOB_INTERRUPTED,
    "worker-online": ev.WORKER_ONLINE,
    "worker-heartbeat": ev.WORKER_HEARTBEAT,
    "worker-offline": ev.WORKER_OFFLINE,
}

# Celery fields with a unified column, by their unified name (most are spelled alike).
_STR_FIELDS: Final = ("hostname", "queue", "name", "eta", "expires", "parent_id", "root_id",
                      "group_id", "routing_key", "exchange", "exception", "traceback",
                      "sw_ident", "sw_ver", "sw_sys")
_REPR_FIELDS: Final = ("args", "kwargs", "result")  # Celery sends reprs; keep them as text
_INT_FIELDS: Final = ("clock", "pid", "retries", "active", "processed")
_FLOAT_FIELDS: Final = ("runtime", "freq", "utcoffset")
# Fields Celery adds on receipt (not part of the event's identity or content).
_RECEIVER_FIELDS: Final = frozenset({"local_received"})
_KNOWN: Final = frozenset(
    {"type", "uuid", "timestamp", "loadavg", "group", *_STR_FIELDS, *_REPR_FIELDS,
     *_INT_FIELDS, *_FLOAT_FIELDS, *_RECEIVER_FIELDS}
)
_MAX_EXT_REPR: Final = 4096


class _Bad(Exception):
    def __init__(self, reason: str, field: str) -> None:
        super().__init__(reason)
        self.rejection = Rejection(reason, field)


def _as_str(raw: Mapping[str, Any], field: str) -> str | None:
    value = raw.get(field)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float | bool):
        return str(value)
    raise _Bad(f"{field} must be a string", field)


def _as_repr(raw: Mapping[str, Any], field: str) -> str | None:
    value = raw.get(field)
    if value is None or isinstance(value, str):
        return value
    try:
        return repr(value)
    except Exception as exc:  # a hostile __repr__ must not escape the normalizer
        raise _Bad(f"{field} cannot be represented: {type(exc).__name__}", field) from None


def _as_int(raw: Mapping[str, Any], field: str) -> int | None:
    value = raw.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Bad(f"{field} must be an integer", field)
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise _Bad(f"{field} must be an integer", field)
        value = int(value)
    return value


def _as_float(raw: Mapping[str, Any], field: str) -> float | None:
    value = raw.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Bad(f"{field} must be a number", field)
    return float(value)


def _loadavg(raw: Mapping[str, Any]) -> list[float] | None:
    value = raw.get("loadavg")
    if value is None:
        return None
    if not isinstance(value, list | tuple) or not all(
        isinstance(x, int | float) and not isinstance(x, bool) for x in value
    ):
        raise _Bad("loadavg must be a list of numbers", "loadavg")
    return [float(x) for x in value]


def _jsonable(value: Any) -> Any:
    """Extension values as JSON: unknown types become their (bounded) repr."""
    try:
        msgspec.json.encode(value)
        return value
    except Exception:
        try:
            return repr(value)[:_MAX_EXT_REPR]
        except Exception:
            return f"<unrepresentable {type(value).__name__}>"


def _extensions(raw: Mapping[str, Any], celery_type: str, kind: str) -> dict[str, Any]:
    ext = {str(k): _jsonable(v) for k, v in raw.items() if k not in _KNOWN}
    if kind in (ev.JOB_OTHER, ev.WORKER_OTHER):
        ext["celery_type"] = celery_type
    return ext


def _kind_of(celery_type: str) -> str:
    kind = CELERY_KINDS.get(celery_type)
    if kind is not None:
        return kind
    if celery_type.startswith("worker-"):
        return ev.WORKER_OTHER
    return ev.JOB_OTHER


def _build(raw: Mapping[str, Any], connection_id: str | None, source: str | None = None
           ) -> Event:
    celery_type = raw.get("type")
    if not isinstance(celery_type, str) or not celery_type:
        raise _Bad("type must be a non-empty string", "type")
    kind = _kind_of(celery_type)
    timestamp = _as_float(raw, "timestamp")
    if timestamp is None:
        raise _Bad("timestamp is required", "timestamp")
    job_id = _as_str(raw, "uuid")
    if kind in ev.JOB_KINDS and not job_id:
        raise _Bad(f"{celery_type} needs a uuid", "uuid")
    fields: dict[str, Any] = {f: _as_str(raw, f) for f in _STR_FIELDS}
    fields.update({f: _as_repr(raw, f) for f in _REPR_FIELDS})
    fields.update({f: _as_int(raw, f) for f in _INT_FIELDS})
    fields.update({f: _as_float(raw, f) for f in _FLOAT_FIELDS})
    if fields["group_id"] is None:
        fields["group_id"] = _as_str(raw, "group")
    if kind in ev.WORKER_KINDS:
        job_id = None
    subject = job_id or fields["hostname"]
    variant = celery_type if kind in (ev.JOB_OTHER, ev.WORKER_OTHER) else ""
    key = dedup_key(kind, subject, fields["hostname"], fields["clock"], timestamp, variant)
    return Event(
        kind=kind,
        timestamp=timestamp,
        dedup_key=key,
        connection_id=connection_id,
        source=source,
        job_id=job_id,
        loadavg=_loadavg(raw),
        extensions=_extensions(raw, celery_type, kind),
        **{k: v for k, v in fields.items() if v is not None},
    )


_IDENTITY_TYPES: Final = (str, type(None))


def _fast(raw: Mapping[str, Any], connection_id: str | None, source: str | None = None
          ) -> Event | None:
    """Celery's usual, well-typed dicts: renamed in a copy, then one C-level conversion (which
    checks every type). None sends the event down the careful path, which coerces or names
    what is wrong."""
    try:
        kind = CELERY_KINDS.get(raw.get("type", ""))
    except TypeError:  # an unhashable type
        return None
    if kind is None:
        return None
    uuid = raw.get("uuid")
    job_id = None if kind in ev.WORKER_KINDS else uuid
    hostname, clock, ts = raw.get("hostname"), raw.get("clock"), raw.get("timestamp")
    # the identity's types, checked before the key is derived from them (the rest by convert)
    if (type(uuid) not in _IDENTITY_TYPES or (kind in ev.JOB_KINDS and not job_id)
            or type(hostname) not in _IDENTITY_TYPES
            or (clock is not None and type(clock) is not int)
            or isinstance(ts, bool) or not isinstance(ts, float | int)):
        return None
    fields = dict(raw)
    unknown = () if _KNOWN.issuperset(raw) else raw.keys() - _KNOWN  # the usual: none
    for key in unknown:  # never a unified field: they go to extensions, below
        del fields[key]
    fields["kind"] = kind
    fields["job_id"] = job_id
    fields["connection_id"] = connection_id
    fields["source"] = source
    fields["dedup_key"] = dedup_key(kind, job_id or hostname, hostname, clock, ts)
    if fields.get("group_id") is None and "group" in fields:
        fields["group_id"] = fields["group"]
    if unknown:
        fields["extensions"] = {str(k): _jsonable(raw[k]) for k in unknown}
    try:  # Celery's own names (type, uuid, group, local_received) are not Event fields
        return msgspec.convert(fields, Event)
    except (msgspec.ValidationError, TypeError):
        return None


def normalize(raw: object, connection_id: str | None = None, now: float | None = None,
              source: str | None = None) -> Event | Rejection:
    """One Celery event dict -> a unified Event, or a Rejection naming what is wrong.
    `source`: who reports it (events.SOURCE_SDK, SOURCE_AGENT)."""
    if not isinstance(raw, Mapping):
        return Rejection("a Celery event must be a mapping")
    try:
        event = _fast(raw, connection_id, source) or _build(raw, connection_id, source)
    except _Bad as bad:
        return bad.rejection
    except Exception as exc:  # totality: nothing but Event or Rejection leaves this function
        return Rejection(f"cannot normalize: {type(exc).__name__}")
    if now is None:
        return event
    return check_event(event, now) or event
