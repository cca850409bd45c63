"""Values for binary COPY that skip building Python datetimes.

PostgreSQL's binary form of `timestamptz` is an int8 of microseconds since 2000-01-01 UTC, and
of `date` an int4 of days since then: a column of those types can be copied from Python ints
sent as int8/int4. The ingest path converts several timestamps per event; a datetime costs
~1 µs each, this a fraction of it. Rounding is datetime.fromtimestamp's, so values are equal.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Final

_PG_EPOCH_S: Final = 946_684_800  # 2000-01-01T00:00:00Z in Unix seconds
_DAY_MICROS: Final = 86_400 * 1_000_000
_PG_EPOCH_DATE: Final = dt.date(2000, 1, 1)


def micros(ts: float) -> int:
    """Unix seconds -> binary timestamptz (copy as "int8")."""
    whole = math.floor(ts)
    # as datetime.fromtimestamp rounds (half to even)
    return (whole - _PG_EPOCH_S) * 1_000_000 + round((ts - whole) * 1e6)


def timestamptz(ts: float | None) -> int | None:
    """`micros`, or NULL."""
    return None if ts is None else micros(ts)


def day_of(micros: int) -> int:
    """A `micros` value -> binary date of its UTC day (copy as "int4"): the day of the
    rounded time, as the timestamptz column holds it."""
    return micros // _DAY_MICROS


def utc_date(ts: float) -> int:
    """Unix seconds -> binary date of its UTC day."""
    return day_of(micros(ts))


def as_date(days: int) -> dt.date:
    """A `utc_date` value as a date."""
    return _PG_EPOCH_DATE + dt.timedelta(days=days)
