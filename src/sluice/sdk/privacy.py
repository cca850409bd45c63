"""Task arguments and results: stripped unless captured; when captured, masked and capped.

Celery events carry `args`, `kwargs` and `result` as reprs. A captured repr is parsed back
(`ast.literal_eval`) when it is a plain literal so sensitive keys can be masked by
structure; otherwise masking falls back to a pattern over the text.
"""

from __future__ import annotations

import ast
import re
from typing import Any, Final

from .config import Redactor

FIELDS: Final = ("args", "kwargs", "result")
MASK: Final = "***"
_SENSITIVE: Final = re.compile(
    r"passw(?:or)?d|passwd|pwd|token|secret|authori[sz]ation|api[_-]?key|credential",
    re.IGNORECASE,
)
# `'password': 'x'`, `"api_key": "x"`, `token=x` inside a repr that is not a literal.
_TEXT_PAIR: Final = re.compile(
    r"""(?P<k>['"]?[\w-]*(?:passw(?:or)?d|passwd|pwd|token|secret|authori[sz]ation|"""
    r"""api[_-]?key|credential)[\w-]*['"]?\s*[:=]\s*)"""
    r"""(?P<v>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^,\s)}\]]+)""",
    re.IGNORECASE,
)
_MAX_PARSE: Final = 64 * 1024
_UNPARSED: Final = object()


def is_sensitive(key: object) -> bool:
    return isinstance(key, str) and _SENSITIVE.search(key) is not None


def mask(value: Any, depth: int = 0) -> Any:
    """Sensitive keys masked at any depth (dicts), pattern-masked in free text."""
    if depth > 20:
        return value
    if isinstance(value, dict):
        return {k: MASK if is_sensitive(k) else mask(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        items = [mask(v, depth + 1) for v in value]
        return tuple(items) if isinstance(value, tuple) else items
    if isinstance(value, str):
        return _TEXT_PAIR.sub(lambda m: m.group("k") + repr(MASK), value)
    return value


def _parse(text: str) -> Any:
    if len(text) > _MAX_PARSE:
        return _UNPARSED
    try:
        return ast.literal_eval(text)
    except Exception:
        return _UNPARSED


def _cap(text: str, size: int) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"


class Privacy:
    def __init__(
        self, capture: bool | frozenset[str], redact: Redactor | None, max_size: int
    ) -> None:
        self._capture = capture
        self._redact = redact
        self._max = max_size

    def captures(self, task_name: str | None) -> bool:
        if isinstance(self._capture, bool):
            return self._capture
        return task_name is not None and task_name in self._capture

    def apply(self, raw: dict[str, Any], task_name: str | None) -> dict[str, Any]:
        """A copy of the Celery event dict that is fit to leave the process."""
        if not any(f in raw for f in FIELDS):
            return raw
        if not self.captures(task_name):
            return {k: v for k, v in raw.items() if k not in FIELDS}
        out = dict(raw)
        for field in FIELDS:
            if out.get(field) is not None:
                out[field] = self.scrub(task_name or "", field, out[field])
        return out

    def scrub(self, task_name: str, field: str, value: Any) -> str:
        try:
            text = value if isinstance(value, str) else repr(value)
            parsed = _parse(text)
            structured = parsed is not _UNPARSED
            current = mask(parsed if structured else text)
            if self._redact is not None:
                current = mask(self._redact(task_name, field, current))
            out = current if isinstance(current, str) and not structured else repr(current)
            return _cap(out, self._max)
        except Exception:
            return "[redaction failed]"  # never fall back to the raw value
