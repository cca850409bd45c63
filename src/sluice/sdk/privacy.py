"""Task arguments and results in the SDK: stripped unless captured (`capture_args`); when
captured, scrubbed by the rules the agent applies too (`sluice.domain.privacy`), then by the
user's `redact` hook, and marked when masked or capped."""

from __future__ import annotations

from typing import Any, Final

from sluice.domain.events import Event
from sluice.domain.privacy import (
    FIELDS,
    MASK,
    TRUNCATED,
    Rules,
    is_sensitive,
    mask,
    protect,
    scrub,
    strip,
)

from .config import Redactor

__all__ = ["FIELDS", "MASK", "TRUNCATED", "Privacy", "is_sensitive", "mask"]

_DEFAULT: Final = Rules()


class Privacy:
    def __init__(self, capture: bool | frozenset[str], redact: Redactor | None = None,
                 max_size: int | None = None, rules: Rules | None = None) -> None:
        self._capture = capture
        self._redact = redact
        base = rules or _DEFAULT
        if max_size is not None and max_size != base.max_size:
            base = Rules(base.keys, base.task_keys, max_size)
        self._rules = base

    def captures(self, task_name: str | None) -> bool:
        if isinstance(self._capture, bool):
            return self._capture
        return task_name is not None and task_name in self._capture

    def event(self, event: Event, task_name: str | None) -> Event:
        """The event fit to leave the process."""
        if not self.captures(task_name):
            return strip(event)
        return protect(event, self._rules, task_name, self._redact)

    def scrub(self, task_name: str, field: str, value: Any) -> str:
        return scrub(value, task_name, field, self._rules, self._redact).text
