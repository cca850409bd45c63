"""Query-parameter parsing shared by the read controllers (errors are 400 with the field)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Final, NamedTuple, TypeAlias

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.constants import RESERVED_KWARGS
from litestar.di import NamedDependency
from litestar.handlers.base import BaseRouteHandler
from litestar.params import (
    BodyKwarg,
    CookieParameter,
    DependencyKwarg,
    HeaderParameter,
    ParameterKwarg,
    PathParameter,
)
from litestar.typing import FieldDefinition

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


# -- the query string as a whole ---------------------------------------------------------

class _QuerySpec(NamedTuple):
    number: type[int] | type[float] | None  # a number's type, else None (text, lists)
    ge: float | None
    gt: float | None
    le: float | None
    lt: float | None


def known_query(connection: ASGIConnection[Any, Any, Any, Any],
                handler: BaseRouteHandler) -> None:
    """A guard for the read endpoints: a query parameter the endpoint does not take, or a
    number outside its declared bounds, is a 400 naming the parameter and what is allowed
    (a misspelt filter would otherwise be ignored, and the caller read every job)."""
    specs = _query_specs(handler)
    for name in dict.fromkeys(connection.query_params.keys()):
        if name not in specs:
            takes = ", ".join(sorted(specs)) or "no query parameters"
            raise bad(name, f"unknown query parameter {name[:60]!r}; "
                            f"{connection.url.path} takes: {takes}")
    for name, spec in specs.items():
        if spec.number is not None:
            for raw in connection.query_params.getall(name, []):
                _check_number(name, raw, spec)


def _check_number(name: str, raw: str, spec: _QuerySpec) -> None:
    bounds = [f">= {_num(spec.ge)}" if spec.ge is not None else None,
              f"> {_num(spec.gt)}" if spec.gt is not None else None,
              f"<= {_num(spec.le)}" if spec.le is not None else None,
              f"< {_num(spec.lt)}" if spec.lt is not None else None]
    what = "an integer" if spec.number is int else "a number"
    allowed = " and ".join(b for b in bounds if b)
    if spec.ge is not None and spec.le is not None:
        allowed = f"from {_num(spec.ge)} to {_num(spec.le)}"
    detail = f"{name} must be {what}{' ' + allowed if allowed else ''}, not {raw[:40]!r}"
    try:
        value: float = int(raw) if spec.number is int else float(raw)
    except ValueError:
        raise bad(name, detail) from None
    if value != value or (spec.ge is not None and value < spec.ge) \
            or (spec.gt is not None and value <= spec.gt) \
            or (spec.le is not None and value > spec.le) \
            or (spec.lt is not None and value >= spec.lt):
        raise bad(name, detail)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


_SPECS_KEY: Final = "sluice_query_specs"


def _query_specs(handler: BaseRouteHandler) -> dict[str, _QuerySpec]:
    """The query parameters a handler declares (by their name in the URL), from its
    signature; kept in the handler's `opt`, computed once."""
    cached = handler.opt.get(_SPECS_KEY)
    if isinstance(cached, dict):
        return cached
    dependencies = set(handler.resolve_dependencies())
    specs: dict[str, _QuerySpec] = {}
    for name, field in handler.parsed_fn_signature.parameters.items():
        kwarg = field.kwarg_definition
        if name in dependencies or name in RESERVED_KWARGS or isinstance(
                kwarg, PathParameter | HeaderParameter | CookieParameter | DependencyKwarg
                | BodyKwarg):
            continue
        url_name = kwarg.name if isinstance(kwarg, ParameterKwarg) and kwarg.name else name
        bounded = kwarg if isinstance(kwarg, ParameterKwarg) else None
        specs[url_name] = _QuerySpec(
            _number_type(field), *(getattr(bounded, b, None) for b in ("ge", "gt", "le", "lt")))
    handler.opt[_SPECS_KEY] = specs
    return specs


def _number_type(field: FieldDefinition) -> type[int] | type[float] | None:
    types = [t.annotation for t in field.inner_types if t.annotation is not type(None)] \
        if field.is_optional else [field.annotation]
    if types and all(t is int for t in types):
        return int
    if types and all(t in (int, float) for t in types):
        return float
    return None
