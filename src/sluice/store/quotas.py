"""Per-connection daily quotas (UTC day of the server clock, counting accepted events).

The count and the append share one transaction: the event log's own append runs nested (a
savepoint), then the count grows by what was actually stored. Under a quota the usage row is
locked first, so batches of that connection take turns and what fits is decided exactly.
Duplicates and rejections never count, and the count is exact under concurrency.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Final

import msgspec
import psycopg

from sluice.domain.events import Event, Rejection

from . import event_log
from .event_log import RejectedItem
from .sqlfiles import queries

Q = queries(__file__, "quotas.sql")
QUOTA_EXCEEDED: Final = "daily quota exceeded"


class QuotaAppend(msgspec.Struct):
    accepted: int
    duplicates: int
    rejected: list[RejectedItem]
    last_position: int | None
    # True when the day's quota was already used up before this batch: nothing was stored
    exhausted: bool = False


def utc_day(now: dt.datetime | None = None) -> dt.date:
    return (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).date()


def seconds_to_next_utc_day(now: dt.datetime | None = None) -> int:
    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    midnight = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), dt.UTC)
    return max(1, int((midnight - now).total_seconds() + 0.999))


def usage(conn: psycopg.Connection, connection_id: str, day: dt.date) -> int:
    row = conn.execute(Q["usage"], {"connection_id": connection_id, "day": day}).fetchone()
    return int(row[0]) if row else 0


def _split_by_room(
    conn: psycopg.Connection, connection_id: str, pending: list[tuple[int, Event]], room: int
) -> tuple[list[Event], int, list[int]]:
    """(events to append, duplicates left out, indexes past the quota). Duplicates never take
    room. Exact because every writer of this connection holds its usage row lock."""
    stored = event_log.stored_keys(conn, connection_id, [e for _, e in pending])
    take: list[Event] = []
    over: list[int] = []
    duplicates = 0
    for index, event in pending:
        if event.dedup_key in stored:
            duplicates += 1
        elif len(take) < room:
            take.append(event)
            stored.add(event.dedup_key)  # a second copy later in the batch is a duplicate
        else:
            over.append(index)
    return take, duplicates, over


def append_within_quota(
    conn: psycopg.Connection,
    connection_id: str,
    items: Sequence[Event | Rejection],
    day: dt.date,
) -> QuotaAppend:
    """Append a validated batch for a connection, storing only what its quota still allows;
    events past the quota are reported as rejected with reason QUOTA_EXCEEDED."""
    rejected = [
        RejectedItem(i, item.reason, item.field)
        for i, item in enumerate(items)
        if isinstance(item, Rejection)
    ]
    pending = [(i, item) for i, item in enumerate(items) if isinstance(item, Event)]
    params = {"connection_id": connection_id, "day": day}
    take = [e for _, e in pending]
    duplicates = 0
    def count(c: psycopg.Connection, n: int) -> None:
        """Add what an append's transaction stored to the day's count, in that transaction:
        the count stays exact."""
        c.execute(Q["add_usage"], {**params, "n": n})

    limit_row = conn.execute(Q["daily_limit"], params).fetchone()
    if limit_row is None or limit_row[0] is None:
        # No quota: nothing to lock first, so batches project concurrently (and one held up
        # by another's jobs stores the rest meanwhile: event_log.append).
        result = event_log.append(conn, connection_id, take, on_stored=count)
        return QuotaAppend(result.accepted, result.duplicates, rejected, result.last_position)
    with conn.transaction():
        if pending:
            # Under a quota, batches of one connection take turns (the counter's row lock,
            # held to commit) so that what fits is decided exactly.
            row = conn.execute(Q["lock_usage"], params).fetchone()
            assert row is not None
            used, limit = int(row[0]), row[1]
            if limit is not None:
                if used >= limit:
                    return QuotaAppend(0, 0, rejected, None, exhausted=True)
                take, duplicates, over = _split_by_room(conn, connection_id, pending,
                                                        limit - used)
                rejected.extend(RejectedItem(i, QUOTA_EXCEEDED) for i in over)
                rejected.sort(key=lambda r: r.index)
        # One append per transaction: event_log.append runs nested here (a savepoint), and
        # counts in it. (Only while a quota is being switched on can this lock order meet the
        # unlimited one: PostgreSQL then aborts one batch as a deadlock, which answers 503 and
        # the sender retries.)
        result = event_log.append(conn, connection_id, take, on_stored=count)
    return QuotaAppend(result.accepted, duplicates + result.duplicates, rejected,
                       result.last_position)
