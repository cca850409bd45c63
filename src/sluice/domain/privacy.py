"""Task arguments and results: stripped unless captured; when captured, sensitive keys
masked at any depth, the text capped, and the event marked when either happened.

Pure, so the SDK and the agent apply the same rules to the same Celery text and their copies
of an event agree (the log keeps whichever arrives first). Celery events carry `args`,
`kwargs` and `result` as reprs: a repr that is a plain literal is parsed back
(`ast.literal_eval`) so keys are masked by structure; otherwise a pattern over the text
masks `key: value` and `key=value` pairs whose key is sensitive.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from .events import Event

FIELDS: Final = ("args", "kwargs", "result")
# What replaces a sensitive value, and ends a capped text: visibly not the original.
MASK: Final = "[redacted]"
TRUNCATED: Final = "…[truncated]"
# Event.extensions key marking what was done to a captured field: {"kwargs": ["redacted"]}.
MARKS_KEY: Final = "sluice_privacy"
REDACTED_MARK: Final = "redacted"
TRUNCATED_MARK: Final = "truncated"
FAILED: Final = "[redaction failed]"

# Key names masked for every task, matched case-insensitively as a part of the key with `_`
# and `-` ignored: "card" masks `card_number` and `CreditCard`, "apikey" masks `api-key`.
DEFAULT_KEYS: Final = ("password", "passwd", "pwd", "token", "secret", "authorization",
                       "authorisation", "apikey", "credential", "privatekey", "card", "cvv",
                       "cvc")
DEFAULT_MAX_SIZE: Final = 1024
MIN_MAX_SIZE: Final = len(TRUNCATED) + 4

# (task name, field "args" | "kwargs" | "result", parsed value or text) -> value to keep
Hook = Callable[[str, str, Any], Any]

_MAX_PARSE: Final = 64 * 1024
_MAX_DEPTH: Final = 50  # deeper structures are masked whole rather than walked
_UNPARSED: Final = object()
_SEPARATORS: Final = re.compile(r"[_\-\s]")
# `'key': `, `"key": `, `key=` in a repr that is not a literal; the value follows.
_TEXT_KEY: Final = re.compile(r"""(?P<q>['"]?)(?P<name>[\w-]+)(?P=q)\s*[:=](?!=)\s*""")
_OPEN: Final = {"(": ")", "[": "]", "{": "}", "<": ">"}
_BARE_END: Final = frozenset(",) }]\t\n\r")


def key_name(name: str) -> str:
    """The form keys and rules are compared in: lower case, without `_`, `-` or spaces."""
    return _SEPARATORS.sub("", name.lower())


@dataclass(frozen=True)
class Rules:
    """Which keys are masked: `keys` for every task, `task_keys` for some tasks only (added
    to the former). Picklable: the agent hands it to its worker processes."""

    keys: tuple[str, ...] = DEFAULT_KEYS
    task_keys: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    max_size: int = DEFAULT_MAX_SIZE

    def __post_init__(self) -> None:  # compared in key_name form
        object.__setattr__(self, "keys", tuple(dict.fromkeys(map(key_name, self.keys))))
        object.__setattr__(self, "task_keys", {
            task: tuple(map(key_name, names)) for task, names in self.task_keys.items()})

    def names_for(self, task: str | None) -> tuple[str, ...]:
        extra = self.task_keys.get(task, ()) if task else ()
        return self.keys + extra if extra else self.keys


def rules_from(keys: Iterable[str] = (), task_keys: Mapping[str, Iterable[str]] | None = None,
               max_size: int = DEFAULT_MAX_SIZE, *, defaults: bool = True) -> Rules:
    """Rules with the default keys (unless `defaults` is False) plus `keys`, and per-task
    `task_keys`. ValueError names what is unusable."""
    if isinstance(keys, str):
        raise ValueError("redact_keys must be a list of key names, not one string")
    base = [*(DEFAULT_KEYS if defaults else ()), *_names(keys, "redact_keys")]
    per_task: dict[str, tuple[str, ...]] = {}
    for task, names in (task_keys or {}).items():
        if not isinstance(task, str) or not task:
            raise ValueError("redaction rules are keyed by task name")
        if isinstance(names, str):
            raise ValueError(f"the key names for {task} must be a list, not one string")
        per_task[task] = tuple(_names(names, f"the key names for {task}"))
    if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < MIN_MAX_SIZE:
        raise ValueError(f"max_arg_size must be an integer >= {MIN_MAX_SIZE}")
    return Rules(tuple(base), per_task, max_size)


def _names(values: Iterable[Any], what: str) -> list[str]:
    out = []
    for value in values:
        if not isinstance(value, str) or not key_name(value):
            raise ValueError(f"{what}: {value!r} is not a key name")
        out.append(key_name(value))
    return out


def parse_rule(text: str) -> tuple[str | None, str]:
    """`KEY` (every task) or `TASK:KEY` (one task), as the agent's --redact-key takes them."""
    task, sep, key = text.rpartition(":")
    if not key_name(key) or (sep and not task):
        raise ValueError(f"{text!r} is not KEY or TASK:KEY")
    return (task or None), key


def is_sensitive(key: object, names: Iterable[str] = DEFAULT_KEYS) -> bool:
    return _matches(key, tuple(map(key_name, names)))


def _matches(key: object, names: tuple[str, ...]) -> bool:
    if not isinstance(key, str):
        return False
    normal = key_name(key)
    return any(name in normal for name in names)


class _Masker:
    """Masks one value; remembers whether anything was masked."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        self.masked = False

    def _hit(self, key: object) -> bool:
        return _matches(key, self.names)

    def value(self, value: Any, depth: int = 0) -> Any:
        if depth > _MAX_DEPTH and isinstance(value, dict | list | tuple | set | frozenset):
            self.masked = True
            return MASK
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                if self._hit(k):
                    self.masked = True
                    out[k] = MASK
                else:
                    out[k] = self.value(v, depth + 1)
            return out
        if isinstance(value, list | tuple | set | frozenset):
            return type(value)(self.value(v, depth + 1) for v in value)
        if isinstance(value, str):
            return self.text(value)
        return value

    def text(self, text: str) -> str:
        out: list[str] = []
        done = 0
        for m in _TEXT_KEY.finditer(text):
            if m.start() < done or not self._hit(m.group("name")):
                continue
            end = _value_end(text, m.end())
            out += [text[done:m.end()], repr(MASK)]
            done = end
            self.masked = True
        return "".join(out) + text[done:] if out else text


def _value_end(text: str, start: int) -> int:
    """Where the value starting at `start` ends: a quoted string, a bracketed group (nested,
    quotes respected, to the end of the text if unbalanced), or a bare word."""
    n = len(text)
    if start >= n:
        return n
    first = text[start]
    if first in "'\"":
        i = start + 1
        while i < n and text[i] != first:
            i += 2 if text[i] == "\\" else 1
        return min(n, i + 1)
    if first in _OPEN:
        stack = [_OPEN[first]]
        i = start + 1
        while i < n and stack:
            c = text[i]
            if c in "'\"":
                i = _value_end(text, i)
                continue
            if c in _OPEN:
                stack.append(_OPEN[c])
            elif c == stack[-1]:
                stack.pop()
            i += 1
        return i
    i = start
    while i < n and text[i] not in _BARE_END:
        i += 1
    return i


def mask(value: Any, names: Iterable[str] = DEFAULT_KEYS) -> Any:
    """Sensitive keys masked at any depth (dicts, in lists, tuples and sets too), and
    `key=value` pairs masked in free text."""
    return _Masker(tuple(map(key_name, names))).value(value)


class Scrubbed(msgspec.Struct, frozen=True):
    text: str
    redacted: bool = False
    truncated: bool = False


def _parse(text: str) -> Any:
    if len(text) > _MAX_PARSE:
        return _UNPARSED
    try:
        return ast.literal_eval(text)
    except Exception:
        return _UNPARSED


def cap(text: str, size: int) -> tuple[str, bool]:
    if len(text) <= size:
        return text, False
    return text[: max(0, size - len(TRUNCATED))] + TRUNCATED, True


def scrub(value: Any, task: str | None, field_name: str, rules: Rules,
          hook: Hook | None = None) -> Scrubbed:
    """One captured field, fit to leave the process: masked, `hook`ed, masked again (the
    hook must not bring a secret back), capped. Never the raw value on failure."""
    try:
        masker = _Masker(rules.names_for(task))
        text = value if isinstance(value, str) else repr(value)
        parsed = _parse(text)
        structured = parsed is not _UNPARSED
        current = masker.value(parsed if structured else text)
        if hook is not None:
            hooked = hook(task or "", field_name, current)
            if hooked != current:  # the user's own redaction: marked like ours
                masker.masked = True
            current = masker.value(hooked)
        out = current if isinstance(current, str) and not structured else repr(current)
        capped, truncated = cap(out, rules.max_size)
        return Scrubbed(capped, masker.masked, truncated)
    except Exception:
        return Scrubbed(FAILED, redacted=True)


def carries_values(event: Event) -> bool:
    return event.args is not None or event.kwargs is not None or event.result is not None


def strip(event: Event) -> Event:
    """The event without arguments, results or their marks (arguments never leave a
    worker, nor enter the log, unless captured)."""
    if not carries_values(event) and MARKS_KEY not in event.extensions:
        return event
    extensions = event.extensions
    if MARKS_KEY in extensions:
        extensions = {k: v for k, v in extensions.items() if k != MARKS_KEY}
    return msgspec.structs.replace(event, args=None, kwargs=None, result=None,
                                   extensions=extensions)


def protect(event: Event, rules: Rules, task: str | None = None,
            hook: Hook | None = None) -> Event:
    """A captured event's arguments and result scrubbed by `rules`, and marked in
    `extensions[MARKS_KEY]` when masked or capped. `task` defaults to the event's name."""
    if not carries_values(event):
        return event
    name = task if task is not None else event.name
    changes: dict[str, Any] = {}
    marks: dict[str, list[str]] = {}
    for field_name in FIELDS:
        value = getattr(event, field_name)
        if value is None:
            continue
        done = scrub(value, name, field_name, rules, hook)
        changes[field_name] = done.text
        flags = [m for m, on in ((REDACTED_MARK, done.redacted),
                                 (TRUNCATED_MARK, done.truncated)) if on]
        if flags:
            marks[field_name] = flags
    extensions = {k: v for k, v in event.extensions.items() if k != MARKS_KEY}
    if marks:
        extensions[MARKS_KEY] = marks
    return msgspec.structs.replace(event, extensions=extensions, **changes)
