"""Whether a job's captured arguments are the whole truth, so a retry may send them again.

Celery's events carry reprs of the arguments, cut at 1024 characters (`...` or an Ellipsis
where it cut, deeper levels elided), and the SDK masks sensitive values (`***`) and caps
what it sends (`…`). A repr that parses back to plain literals with none of those marks is
complete; anything else is not, and a retry then needs the result backend's copy
(`result_extended`).
"""

from __future__ import annotations

import ast
import warnings
from typing import Any, Final

from .privacy import MASK

# Celery's saferepr cuts at argsrepr_maxsize (1024): a repr this long may have been cut.
MAX_COMPLETE_REPR: Final = 1000
_CUT_MARKS: Final = ("...", "…")
_MASKS: Final = (MASK, "***")  # the privacy rules' mark; "***" from SDKs before it

NOT_CAPTURED: Final = "the job's arguments were not captured"
INCOMPLETE: Final = "the job's captured arguments are truncated, masked or not plain literals"
HOW_TO: Final = ("turn on result_extended=True in the Celery app and set the connection's "
                 "result backend (sluice connections set ID --result-backend URL), or "
                 "capture arguments (sluice.init(capture_args=True), agent --capture-args)")


def _marked(value: Any, depth: int = 0) -> bool:
    """Whether a parsed value carries a cut or mask mark anywhere."""
    if depth > 50 or value is Ellipsis:
        return True
    if isinstance(value, str):
        return any(m in value for m in _MASKS) or any(value.endswith(m) for m in _CUT_MARKS)
    if isinstance(value, dict):
        return any(_marked(k, depth + 1) or _marked(v, depth + 1) for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return any(_marked(v, depth + 1) for v in value)
    return False


def _literal(text: str) -> tuple[bool, Any]:
    if len(text) >= MAX_COMPLETE_REPR:
        return False, None
    try:
        with warnings.catch_warnings():  # an odd escape in a repr is no reason to warn
            warnings.simplefilter("ignore")
            value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False, None
    return (not _marked(value)), value


def captured(args: str | None, kwargs: str | None
             ) -> tuple[list[Any], dict[str, Any]] | str:
    """(args, kwargs) from captured reprs when they are complete, else the reason not."""
    if args is None and kwargs is None:
        return NOT_CAPTURED
    ok_args, parsed_args = _literal(args) if args is not None else (True, ())
    ok_kwargs, parsed_kwargs = _literal(kwargs) if kwargs is not None else (True, {})
    if not (ok_args and ok_kwargs):
        return INCOMPLETE
    if not isinstance(parsed_args, list | tuple) or not isinstance(parsed_kwargs, dict):
        return INCOMPLETE
    if not all(isinstance(k, str) for k in parsed_kwargs):
        return INCOMPLETE
    return list(parsed_args), dict(parsed_kwargs)


def unknown_reason(why: str) -> str:
    """The failed retry's reason: why the arguments are unknown and which setting fixes it."""
    return f"cannot retry: {why}; {HOW_TO}"
