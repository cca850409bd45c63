"""JSON errors everywhere: `{"error": code, "detail": text, "field": name?}`, never HTML.

Handlers: our ApiError, Litestar's HTTP exceptions (validation, 404, 405, 413...), database
unavailability (503 + Retry-After), a parameter the database refuses (400), and a last
resort that answers a JSON 500.
"""

from __future__ import annotations

import logging
from typing import Any, Final

import msgspec
import psycopg
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandlersMap

log = logging.getLogger("sluice.api")
DB_RETRY_AFTER_S: Final = 5

# Codes for Litestar's own exceptions, by status.
_CODES: Final = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
    500: "internal",
    503: "unavailable",
}


class ErrorBody(msgspec.Struct, omit_defaults=True):
    error: str
    detail: str
    field: str | None = None


class ApiError(Exception):
    """An expected failure with its HTTP status; raise it anywhere below a handler."""

    def __init__(self, status: int, code: str, detail: str, *, field: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.field = field
        self.headers = headers or {}


def error_response(status: int, code: str, detail: str, field: str | None = None,
                   headers: dict[str, str] | None = None) -> Response[ErrorBody]:
    return Response(ErrorBody(code, detail, field), status_code=status, headers=headers,
                    media_type="application/json")


def _note_status(request: Request[Any, Any, Any], status: int, code: str) -> None:
    from .logs import log_unrouted, note  # the access log reports error codes too

    if not note(request, status=status, error=code):
        log_unrouted(request, status, code)


def _api_error(request: Request[Any, Any, Any], exc: ApiError) -> Response[ErrorBody]:
    _note_status(request, exc.status, exc.code)
    return error_response(exc.status, exc.code, exc.detail, exc.field, exc.headers)


def _validation_field(exc: ValidationException) -> str | None:
    extra = exc.extra
    if isinstance(extra, list) and extra and isinstance(extra[0], dict):
        key = extra[0].get("key")
        return str(key) if key is not None else None
    return None


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[ErrorBody]:
    status = exc.status_code
    code = _CODES.get(status, "error")
    field = _validation_field(exc) if isinstance(exc, ValidationException) else None
    headers = dict(exc.headers or {})
    _note_status(request, status, code)
    if status >= 500:
        log.error("HTTP %s on %s: %s", status, request.url.path, exc.detail)
    return error_response(status, code, str(exc.detail)[:500], field, headers)


def _db_unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    # Message only: a DSN or query parameters never reach the log.
    log.warning("database unavailable on %s: %s", request.url.path, type(exc).__name__)
    _note_status(request, 503, "database_unavailable")
    return error_response(503, "database_unavailable", "the database is unavailable; retry later",
                          headers={"Retry-After": str(DB_RETRY_AFTER_S)})


def _data_error(request: Request[Any, Any, Any], exc: psycopg.DataError
                ) -> Response[ErrorBody]:
    # On a read, stored values are all valid: the request's parameters are not (ingest
    # isolates content errors itself and never gets here).
    message = exc.diag.message_primary or str(exc).split("\n", 1)[0]
    log.warning("data error on %s: %s", request.url.path, message)
    _note_status(request, 400, "bad_request")
    return error_response(400, "bad_request", f"a parameter has a value the database cannot "
                          f"take: {message[:200]}")


def _internal(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    _note_status(request, 500, "internal")
    return error_response(500, "internal", "internal server error")


EXCEPTION_HANDLERS: Final[ExceptionHandlersMap] = {
    ApiError: _api_error,
    HTTPException: _http_error,
    psycopg.OperationalError: _db_unavailable,  # includes psycopg_pool.PoolTimeout
    psycopg.InterfaceError: _db_unavailable,  # a connection closed under us
    psycopg.DataError: _data_error,
    Exception: _internal,
}
