"""Small JSON request bodies (commands, settings) decoded into msgspec structs: a body that
does not fit answers 400 naming the field, never 500 or a validation dump."""

from __future__ import annotations

import re
from typing import Any, Final, TypeVar

import msgspec

from .errors import ApiError
from .params import AnyRequest

MAX_BODY_BYTES: Final = 1024 * 1024
_PATH_RE: Final = re.compile(r"at `\$\.([A-Za-z_]\w*)")

T = TypeVar("T")


async def decode(request: AnyRequest, type_: type[T], *, empty: T | None = None) -> T:
    """The body as `type_`; an empty body gives `empty` when one is given (else 400)."""
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(413, "too_large", f"the body is at most {MAX_BODY_BYTES} bytes")
    if not raw.strip():
        if empty is not None:
            return empty
        raise ApiError(400, "bad_request", "a JSON body is required")
    try:
        return msgspec.json.decode(raw, type=type_)
    except msgspec.ValidationError as exc:
        found = _PATH_RE.search(str(exc))
        # the message names the field and the expected type, never the value sent
        raise ApiError(400, "bad_request", str(exc)[:300],
                       field=found.group(1) if found else None) from None
    except msgspec.DecodeError:
        raise ApiError(400, "bad_request", "the body is not valid JSON") from None


def field_error(field: str, detail: str) -> ApiError:
    return ApiError(400, "bad_request", detail, field=field)


def present(value: Any) -> bool:
    return value is not msgspec.UNSET
