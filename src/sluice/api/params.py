"""Query-parameter parsing shared by the read controllers (errors are 400 with the field)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Final, TypeAlias

from litestar import Request
from litestar.di import NamedDependency

from sluice.api.auth import Principal
from sluice.api.errors import ApiError
from sluice.domain.states import State

# handler parameter types: the request, and the caller authenticated by `requires("read")`
AnyRequest: TypeAlias = Request[Any, Any, Any]
Caller: TypeAlias = NamedDependency[Principal]

_STATES: Final = frozenset(s.value for s in State)
_WINDOW_RE: Final = re.compile(r"^\s*(\d{1,12})\s*([smhd])\s*$", re.ASCII)
_UNIT_S: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def bad(field: str, detail: str) -> ApiError:
    return ApiError(400, "bad_request", detail, field=field)


def split_values(values: list[str] | None) -> list[str]:
    """Repeated and/or comma-separated values (`?state=a&state=b,c`), blanks dropped."""
    return [v.strip() for raw in values or () for v in raw.split(",") if v.strip()]


def states(values: list[str] | None) -> list[str]:
    wanted = [v.lower() for v in split_values(values)]
    unknown = sorted(set(wanted) - _STATES)
    if unknown:
        raise bad("state", f"unknown state(s) {', '.join(unknown)}; "
                           f"known: {', '.join(s.value for s in State)}")
    return wanted


def instant(field: str, value: str | None) -> dt.datetime | None:
    """ISO-8601 (naive = UTC, `Z` accepted) or seconds since the epoch."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return dt.datetime.fromtimestamp(float(text), dt.UTC)
    except (ValueError, OverflowError, OSError):
        pass
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise bad(field, f"{field} must be ISO-8601 or epoch seconds, not {text!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def window(field: str, value: str, *, maximum: dt.timedelta) -> dt.timedelta:
    """`90s`, `15m`, `1h`, `7d` (up to `maximum`)."""
    m = _WINDOW_RE.match(value)
    if m is None:
        raise bad(field, f"{field} must look like 15m, 1h or 7d, not {value[:40]!r}")
    seconds = int(m.group(1)) * _UNIT_S[m.group(2)]  # compared before any timedelta exists
    if not 60 <= seconds <= maximum.total_seconds():
        raise bad(field, f"{field} must be between 1m and {int(maximum.total_seconds() // 3600)}h")
    return dt.timedelta(seconds=seconds)


def flag(field: str, value: str | None) -> bool:
    if value is None:
        return False
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on", ""):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise bad(field, f"{field} must be true or false")
