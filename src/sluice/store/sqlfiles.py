"""Named SQL statements kept in .sql files inside the package (`-- name: NAME` before
each), read with importlib.resources (so they load from a wheel or a zip as from a
checkout) and parsed once."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_NAME_RE = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


def parse(text: str) -> dict[str, str]:
    """{name: statement} of one .sql file's text."""
    parts = _NAME_RE.split(text)
    return {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}


def read_text(package: str, filename: str) -> str:
    """A .sql file of a package of sluice's, whole."""
    return resources.files(package).joinpath(filename).read_text(encoding="utf-8")


@cache
def queries(package: str, filename: str) -> dict[str, str]:
    """The named statements of a .sql file beside a module: `queries(__package__, "x.sql")`."""
    return parse(read_text(package, filename))
