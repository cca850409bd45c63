"""SDK settings: keyword arguments, else environment variables, validated once."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from sluice.domain.privacy import Rules, rules_from

from .errors import SluiceConfigError

DEFAULT_ENDPOINT: Final = "http://127.0.0.1:8000"

# (task name, field "args" | "kwargs" | "result", value) -> value to send
Redactor = Callable[[str, str, Any], Any]


@dataclass(frozen=True)
class SdkConfig:
    api_key: str
    connection_id: str
    endpoint: str
    capture_args: bool | frozenset[str] = False
    redact: Redactor | None = None
    max_arg_size: int = 1024
    # which keys are masked in captured values (the defaults plus `redact_keys`); None:
    # the defaults, capped at max_arg_size
    rules: Rules | None = None
    max_buffer: int = 10_000
    batch_size: int = 500
    flush_interval: float = 1.0
    timeout: float = 5.0
    shutdown_timeout: float = 5.0

    def privacy_rules(self) -> Rules:
        return self.rules if self.rules is not None else Rules(max_size=self.max_arg_size)

    def __repr__(self) -> str:  # never show the API key
        return f"SdkConfig(endpoint={self.endpoint!r}, connection_id={self.connection_id!r})"


def _pick(value: str | None, env: str) -> str:
    if value is None:
        value = os.environ.get(env, "")
    if not isinstance(value, str):
        raise SluiceConfigError(f"{env.removeprefix('SLUICE_').lower()} must be a string")
    return value.strip()


def _capture(value: object) -> bool | frozenset[str]:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise SluiceConfigError("capture_args must be True, False or a list of task names")
    names = list(value)
    if not all(isinstance(n, str) for n in names):
        raise SluiceConfigError("capture_args must be True, False or a list of task names")
    return frozenset(names)


def _rules(redact_keys: object, max_arg_size: object) -> Rules:
    """`redact_keys`: key names for every task, or {task name or "*": key names}."""
    keys: Iterable[Any] = ()
    per_task: dict[str, Iterable[Any]] = {}
    if isinstance(redact_keys, Mapping):
        for task, names in redact_keys.items():
            if task == "*":
                keys = names
            else:
                per_task[task] = names
    elif redact_keys is not None:
        if isinstance(redact_keys, str) or not isinstance(redact_keys, Iterable):
            raise SluiceConfigError(
                "redact_keys must be a list of key names or {task name: key names}")
        keys = redact_keys
    try:
        return rules_from(keys, per_task, max_arg_size)  # type: ignore[arg-type]
    except (ValueError, TypeError) as exc:
        raise SluiceConfigError(str(exc)) from None


def resolve(
    *,
    api_key: str | None,
    connection_id: str | None,
    endpoint: str | None,
    capture_args: object = False,
    redact: object = None,
    redact_keys: object = None,
    max_arg_size: object = 1024,
    **tuning: Any,
) -> SdkConfig:
    """Arguments first, then SLUICE_* environment variables; SluiceConfigError if unusable."""
    key = _pick(api_key, "SLUICE_API_KEY")
    if not key:
        raise SluiceConfigError("no API key: pass api_key= or set SLUICE_API_KEY")
    conn = _pick(connection_id, "SLUICE_CONNECTION_ID")
    if not conn:
        raise SluiceConfigError(
            "no connection id: pass connection_id= or set SLUICE_CONNECTION_ID"
        )
    try:
        conn = str(uuid.UUID(conn))
    except ValueError:
        raise SluiceConfigError("the connection id must be a UUID") from None
    url = _pick(endpoint, "SLUICE_ENDPOINT") or DEFAULT_ENDPOINT
    if not url.startswith(("http://", "https://")):
        raise SluiceConfigError("the endpoint must be an http:// or https:// URL")
    if redact is not None and not callable(redact):
        raise SluiceConfigError("redact must be a callable (task_name, field, value) -> value")
    rules = _rules(redact_keys, max_arg_size)
    for name, value in tuning.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise SluiceConfigError(f"{name} must be a positive number")
    return SdkConfig(
        api_key=key,
        connection_id=conn,
        endpoint=url.rstrip("/"),
        capture_args=_capture(capture_args),
        redact=redact,
        max_arg_size=rules.max_size,
        rules=rules,
        **tuning,
    )
