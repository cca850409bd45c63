"""The one conductor of an append: quota, projection into every read model, log insert
and usage count, in one transaction.

Task arguments and results are kept only when the connection allows it (`capture_args`):
otherwise they are dropped here, from every source's events, before anything stores them.

Per-connection daily quotas count accepted events (UTC day of the server clock). Under a
quota, the usage row is locked first, so batches of that connection take turns and what
fits is decided exactly; duplicates and rejections never count. Without one, batches of a
connection project concurrently.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import Final

import msgspec
import psycopg

from sluice.domain.events import Event, Rejection
from sluice.domain.privacy import strip
from sluice.log import event_log
from sluice.log.event_log import Row
from sluice.store import connections, usage
from sluice.views import registry
from sluice.views.model import Context

log = logging.getLogger(__name__)

QUOTA_EXCEEDED: Final = "daily quota exceeded"
# Failures an event's content can cause once it is past the validator (a value PostgreSQL or
# a projector cannot take), as opposed to the database being unavailable (OperationalError:
# 503). An append that fails with one of these is split to find the events at fault.
CONTENT_ERRORS: Final = (psycopg.DataError, psycopg.IntegrityError,
                         psycopg.errors.ProgramLimitExceeded, ValueError, TypeError,
                         ArithmeticError, RecursionError)


class RejectedItem(msgspec.Struct, frozen=True, omit_defaults=True):
    """An event of a batch that was not stored: its index in the batch and why."""

    index: int
    reason: str
    field: str | None = None


class AppendResult(msgspec.Struct):
    accepted: int
    duplicates: int
    rejected: list[RejectedItem]
    last_position: int | None = None
    # True when the day's quota was already used up before this batch: nothing was stored
    exhausted: bool = False


def utc_day(now: dt.datetime | None = None) -> dt.date:
    return (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).date()


def seconds_to_next_utc_day(now: dt.datetime | None = None) -> int:
    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    midnight = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), dt.UTC)
    return max(1, int((midnight - now).total_seconds() + 0.999))


def _store(conn: psycopg.Connection, connection_id: str, rows: list[Row], day: dt.date,
           *, wait: bool) -> tuple[list[Row], int | None, list[Row]]:
    """Project the rows and insert them into the log, then count them, in one transaction (a
    savepoint when the caller has one open): (rows stored, last position, rows left for
    later). Without `wait`, the rows of jobs that another append is projecting are left
    for later instead of waiting for it.

    Optimistic: no probe for duplicates first. When the log's unique key finds some (a
    resent batch, or a key a sender reused), the rollback takes back the projection with the
    insert (and the log lock, and the notification) and it is redone with only the new rows,
    so read models never fold an event the log did not store. Each retry has fewer rows (the
    conflicting ones are committed, hence seen by the probe), and takes the locks again in
    the same order as any append."""
    while rows:
        try:
            with conn.transaction():
                left = registry.project(conn, connection_id, [r.event for r in rows],
                                        Context(wait=wait))
                now = [r for i, r in enumerate(rows) if i not in left] if left else rows
                later = [rows[i] for i in sorted(left)]
                last = event_log.insert(conn, connection_id, now) if now else None
                if now:
                    usage.add(conn, connection_id, day, len(now))
                return now, last, later
        except psycopg.errors.UniqueViolation:
            found = event_log.stored_keys(conn, connection_id, [r.event for r in rows])
            rows = [r for r in rows if r.event.dedup_key not in found]
    return rows, None, []


def _append(conn: psycopg.Connection, connection_id: str, events: Sequence[Event],
            day: dt.date) -> tuple[int, int | None]:
    """Store distinct events not yet in the log: (stored, last position).

    Projection runs before the log lock (under per-job locks), so concurrent appends overlap
    everywhere but the insert. Outside a transaction, jobs that another append is projecting
    do not hold up the rest: the batch's other events are stored in one transaction, then
    those jobs' events in a second one, which waits for them (a sender that retries the
    batch meanwhile finds the first part stored, as duplicates). Inside the caller's
    transaction, one transaction (a savepoint) waits for all."""
    rows = event_log.rows_of(events)
    if not rows:
        return 0, None
    event_log.ensure_partitions(conn, rows)
    split = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    fresh, last, later = _store(conn, connection_id, rows, day, wait=not split)
    if later:  # the jobs another append held: wait for them now
        more, last_more, _ = _store(conn, connection_id, later, day, wait=True)
        fresh += more
        last = last_more if last_more is not None else last
    return len(fresh), last


def _split_by_room(conn: psycopg.Connection, connection_id: str,
                   pending: list[tuple[int, Event]], room: int
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


def append(conn: psycopg.Connection, connection_id: str,
           items: Sequence[Event | Rejection], day: dt.date | None = None) -> AppendResult:
    """Append a validated batch for a connection (rejections are reported by index): what
    its quota still allows is projected, stored once (dedup key) and counted, in one
    transaction; events past the quota are rejected with reason QUOTA_EXCEEDED. Arguments and
    results are dropped unless the connection captures them. `day`: the UTC day the usage
    counts in (default: today).

    An event that fails in storage despite the validator never fails the batch: the batch
    is appended again in halves (each its own transaction), down to that event, which is
    rejected by index while the rest is stored."""
    day = day or utc_day()
    try:
        return _append_batch(conn, connection_id, items, day)
    except CONTENT_ERRORS:
        if conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
            raise  # the caller's own transaction is broken: it alone can roll back
    return _isolate(conn, connection_id, items, day)


def _reason(exc: BaseException) -> str:
    diag = getattr(exc, "diag", None)
    text = (diag.message_primary if diag is not None else None) or str(exc)
    return f"the event could not be stored: {type(exc).__name__}: {text[:200]}"


def _isolate(conn: psycopg.Connection, connection_id: str,
             items: Sequence[Event | Rejection], day: dt.date) -> AppendResult:
    """`append` of a batch that failed on its content: halves are appended on their own,
    and halved again while they fail, so only the events that fail alone are rejected."""
    total = AppendResult(0, 0, [RejectedItem(i, item.reason, item.field)
                                for i, item in enumerate(items)
                                if isinstance(item, Rejection)])
    whole = [(i, item) for i, item in enumerate(items) if isinstance(item, Event)]
    parts = [whole[len(whole) // 2:], whole[:len(whole) // 2]]  # a stack: first half on top
    while parts:
        part = parts.pop()
        if not part:
            continue
        try:
            result = _append_batch(conn, connection_id, [e for _, e in part], day)
        except CONTENT_ERRORS as exc:
            if conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
                raise
            if len(part) > 1:
                parts += [part[len(part) // 2:], part[:len(part) // 2]]
                continue
            index, event = part[0]
            # the validator let it through: a bound it lacks, to be added there
            log.error("ingest: event %d (%s) of a batch could not be stored: %s", index,
                      event.kind, _reason(exc))
            total.rejected.append(RejectedItem(index, _reason(exc)))
            continue
        total.accepted += result.accepted
        total.duplicates += result.duplicates
        if result.last_position is not None:
            total.last_position = max(total.last_position or 0, result.last_position)
        if result.exhausted:
            total.rejected.extend(RejectedItem(i, QUOTA_EXCEEDED) for i, _ in part)
        else:
            total.rejected.extend(RejectedItem(part[r.index][0], r.reason, r.field)
                                  for r in result.rejected)
    total.rejected.sort(key=lambda r: r.index)
    return total


def _append_batch(conn: psycopg.Connection, connection_id: str,
                  items: Sequence[Event | Rejection], day: dt.date) -> AppendResult:
    settings = connections.ingest_settings(conn, connection_id)
    rejected = [RejectedItem(i, item.reason, item.field)
                for i, item in enumerate(items) if isinstance(item, Rejection)]
    pending = [(i, item if settings.capture_args else strip(item))
               for i, item in enumerate(items) if isinstance(item, Event)]
    events = [e for _, e in pending]
    if not settings.limited:
        stored, last = _append(conn, connection_id, events, day)
        return AppendResult(stored, len(events) - stored, rejected, last)
    duplicates = 0
    with conn.transaction():
        if pending:
            # Under a quota, batches of one connection take turns (the counter's row lock,
            # held to commit) so that what fits is decided exactly.
            used, limit = usage.lock(conn, connection_id, day)
            if limit is not None:
                if used >= limit:
                    return AppendResult(0, 0, rejected, None, exhausted=True)
                events, duplicates, over = _split_by_room(conn, connection_id, pending,
                                                          limit - used)
                rejected.extend(RejectedItem(i, QUOTA_EXCEEDED) for i in over)
                rejected.sort(key=lambda r: r.index)
        # (Only while a quota is being switched on can this lock order meet the unlimited
        # one: PostgreSQL then aborts one batch as a deadlock, which answers 503 and the
        # sender retries.)
        stored, last = _append(conn, connection_id, events, day)
    return AppendResult(stored, duplicates + len(events) - stored, rejected, last)
