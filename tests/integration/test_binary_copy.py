"""binary_copy's ints land in timestamptz/date columns as the equal datetimes would."""

from __future__ import annotations

import datetime as dt

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sluice.store.binary_copy import as_date, day_of, micros, timestamptz, utc_date

# Unix seconds from 1970 to 2100, with sub-microsecond fractions (rounding edges included)
SECONDS = st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # one table, truncated
@given(values=st.lists(SECONDS, min_size=1, max_size=50))
def test_ints_copy_as_the_datetimes_would(db: psycopg.Connection, values: list[float]) -> None:
    db.execute("CREATE TEMP TABLE IF NOT EXISTS t (a timestamptz, b timestamptz, d date, "
               "e date)")
    db.execute("TRUNCATE t")
    with db.cursor().copy("COPY t FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["int8", "timestamptz", "int4", "date"])
        for v in values:
            at = dt.datetime.fromtimestamp(v, dt.UTC)
            copy.write_row((timestamptz(v), at, utc_date(v), at.date()))
    rows = db.execute("SELECT a, b, d, e FROM t").fetchall()
    assert [(a, d) for a, _, d, _ in rows] == [(b, e) for _, b, _, e in rows]
    assert [as_date(utc_date(v)) for v in values] == [e for *_, e in rows]
    # the log's row computes the day from its micros (one conversion per event)
    assert [(micros(v), day_of(micros(v))) for v in values] == [
        (timestamptz(v), utc_date(v)) for v in values]


def test_null() -> None:
    assert timestamptz(None) is None
