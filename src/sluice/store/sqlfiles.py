"""Named SQL statements kept in .sql files (`-- name: NAME` before each), loaded once."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

_NAME_RE = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


@cache
def load(path: Path) -> dict[str, str]:
    """{name: statement} of one .sql file."""
    text = path.read_text(encoding="utf-8")
    parts = _NAME_RE.split(text)
    return {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}


def queries(module_file: str, filename: str = "queries.sql") -> dict[str, str]:
    """The named statements of the .sql file beside a module."""
    return load(Path(module_file).with_name(filename))
