"""Small helpers shared by the read queries: UTC datetimes, LIKE patterns, filter assembly."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def utc(value: dt.datetime | None) -> dt.datetime | None:
    """A timestamptz as UTC, whatever the session's TimeZone."""
    return None if value is None else value.astimezone(dt.UTC)


def like_escape(text: str) -> str:
    """`text` as a literal inside a LIKE pattern (backslash is PostgreSQL's default escape)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def contains(text: str) -> str:
    return f"%{like_escape(text.lower())}%"


def with_filters(statement: str, fragments: dict[str, str], names: Iterable[str]) -> str:
    """Fill a statement's {filters} slot with named static fragments (never user input)."""
    return statement.replace("{filters}", " ".join(fragments[n] for n in names))
