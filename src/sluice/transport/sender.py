"""The sender shared by SDK and agent: bounded buffer, batches, gzip, retries with backoff,
poison isolation.

A batch answered 503, 502, 504, 408 or 429, or not answered at all (timeout, refused
connection), met a server that is unavailable: it is sent again, whole, after a backoff. A
batch answered 500 was taken by the server, which failed on it: it is split in halves, sent
again at once, and split while it fails, so an event the server cannot take (a poison event)
ends alone; sent alone, it is given one more try after a backoff, then dropped, counted
(`stats()["poisoned"]`) and logged, and everything around it is delivered."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, Final

import msgspec
import urllib3

from sluice.domain.dedup import dedup_key
from sluice.domain.events import EVENT_ENCODER, SOURCE_DROPPED, Event

from ._threads import RealThreads, Signal, cooperative_sleep, real_threads
from ._wire import (
    MAX_BATCH_EVENTS,
    backoff_delay,
    chunk,
    decode_answer,
    gzip_body,
    retry_after_seconds,
)
from .rejections import RejectionLog

logger = logging.getLogger("sluice.transport")

Prepare = Callable[[Any], Event | None]
_RETRY_STATUSES: Final = frozenset({408, 429, 503})
# The server took the batch and failed on it: split it to isolate what it fails on.
_SPLIT_STATUS: Final = 500
_POISON_LOGS_IN_FULL: Final = 10  # poison events logged one by one; then every 100th
_POLL_S: Final = 0.005
_FLUSH_RETRY_S: Final = 0.25


class _Chunk:
    __slots__ = ("body", "encoded", "events", "failed", "report")

    def __init__(self, encoded: list[bytes], report: int) -> None:
        self.encoded = encoded  # kept to split the chunk if the server fails on it
        self.body = gzip_body(encoded)
        self.events = len(encoded) - (1 if report else 0)  # the report is not a user event
        self.report = report  # drop count carried by a source.dropped event in this chunk
        self.failed = False  # answered 500 once already (a lone event: retried once)

    def halves(self) -> list[_Chunk]:
        mid = len(self.encoded) // 2
        # the report, if any, is the first item: it stays in the first half
        return [_Chunk(self.encoded[:mid], self.report), _Chunk(self.encoded[mid:], 0)]


class _Batch:
    __slots__ = ("chunks",)

    def __init__(self, chunks: list[_Chunk]) -> None:
        self.chunks = chunks


class Transport:
    """Buffers events in memory and sends them to `POST {endpoint}/api/ingest` from a
    background OS thread. `submit` never raises and never blocks; when the buffer is full
    the oldest events are dropped and counted, and the count reaches the server later as a
    `source.dropped` event."""

    def __init__(
        self,
        endpoint: str,
        api_key: str,
        connection_id: str,
        *,
        max_buffer: int = 10_000,
        batch_size: int = 500,
        flush_interval: float = 1.0,
        timeout: float = 5.0,
        max_backoff: float = 30.0,
        hostname: str | None = None,
        prepare: Prepare | None = None,
    ) -> None:
        self._url = endpoint.rstrip("/") + "/api/ingest"
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "User-Agent": "sluice-transport",
        }
        self._connection_id = connection_id
        self._max_buffer = max(1, max_buffer)
        self._batch_size = max(1, min(batch_size, MAX_BATCH_EVENTS - 1))  # room for a report
        self._flush_interval = max(0.01, flush_interval)
        self._timeout = urllib3.Timeout(connect=timeout, read=timeout)
        self._max_backoff = max(0.01, max_backoff)
        self._hostname = hostname or socket.gethostname()
        self._prepare = prepare
        self._logged_statuses: set[int] = set()
        self._rejections = RejectionLog(logger)
        self._started_before_fork = False
        self._reset()
        _LIVE.add(self)

    def _reset(self) -> None:
        """(Re)create all runtime state: at construction and in a forked child, which must
        not share the parent's lock, buffer, thread or sockets."""
        threads = real_threads()
        self._lock = threads.allocate_lock()
        self._wake = Signal(threads.allocate_lock)
        self._buffer: deque[Any] = deque()
        self._pool: urllib3.PoolManager | None = None
        self._started = False
        self._stopping = False
        self._thread_done: Any = None
        self._flushing = 0
        # Counters (under _lock). `_taken` counts items that left the buffer in order
        # (sent off or dropped); flush compares it with `_submitted`.
        self._submitted = 0
        self._taken = 0
        self._sent = 0
        self._dropped = 0
        self._dropped_overflow = 0
        self._invalid = 0
        self._rejected = 0
        self._duplicates = 0
        self._failed_attempts = 0
        self._batches = 0
        self._poisoned = 0
        self._inflight: _Batch | None = None
        self._inflight_start: int | None = None
        self._inflight_events = 0
        # Retry state (sender thread only).
        self._attempt = 0
        self._not_before = 0.0
        self._last_attempt = 0.0
        self._hard_wait = False  # a Retry-After: flush does not cut it short
        self._next_tick = 0.0
        self._reachable = False
        self._down_logged = False
        self._unreported_drops = 0
        self._report_seq = 0

    # -- public interface ---------------------------------------------------------------

    def start(self) -> None:
        """Start the background sender thread (idempotent)."""
        try:
            with self._lock:
                if self._started:
                    return
                self._started = True
                self._stopping = False
            threads = real_threads()
            self._thread_done = threads.allocate_lock()
            self._thread_done.acquire()
            threads.start_new_thread(self._run, (threads,))
        except Exception:
            logger.exception("sluice: cannot start the sender thread")

    def submit(self, event: Event) -> None:
        """Queue one event. O(1); never raises, never blocks."""
        self._enqueue(event)

    def submit_raw(self, item: object) -> None:
        """Queue a source item that the `prepare` hook turns into an Event in the sender
        thread, off the caller's hot path (the SDK queues raw Celery event dicts)."""
        self._enqueue(item)

    def flush(self, timeout: float) -> bool:
        """Send everything submitted so far, waiting up to `timeout` seconds.
        True when all of it was sent (or definitively dropped) in time."""
        deadline = time.monotonic() + max(0.0, timeout)
        try:
            with self._lock:
                target = self._submitted
                self._flushing += 1
            if not self._started:
                self.start()
            self._wake.set()
            try:
                while not self._settled(target):
                    if time.monotonic() >= deadline:
                        return False
                    cooperative_sleep(_POLL_S)
                return True
            finally:
                with self._lock:
                    self._flushing -= 1
        except Exception:
            return False

    def close(self, timeout: float = 5.0) -> None:
        """Flush up to `timeout`, then stop the sender thread."""
        deadline = time.monotonic() + max(0.0, timeout)
        try:
            if self._started:
                self.flush(timeout)
            self._stopping = True
            self._wake.set()
            done = self._thread_done
            while done is not None and self._started and time.monotonic() < deadline:
                if done.acquire(False):
                    done.release()
                    break
                cooperative_sleep(_POLL_S)
        except Exception:
            logger.debug("sluice: error while closing the transport", exc_info=True)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "submitted": self._submitted,
                "sent": self._sent,
                "dropped": self._dropped,
                "rejected": self._rejected,
                "failed_attempts": self._failed_attempts,
                "buffered": len(self._buffer) + self._inflight_events,
                "dropped_overflow": self._dropped_overflow,
                "invalid": self._invalid,
                "duplicates": self._duplicates,
                "batches": self._batches,
                "poisoned": self._poisoned,
            }

    def __repr__(self) -> str:  # never show the API key
        return f"<Transport {self._url} connection={self._connection_id}>"

    # -- producer side ------------------------------------------------------------------

    def _enqueue(self, item: object) -> None:
        try:
            with self._lock:
                buf = self._buffer
                if len(buf) >= self._max_buffer:
                    buf.popleft()  # drop the oldest: recent events matter more
                    self._taken += 1
                    self._dropped += 1
                    self._dropped_overflow += 1
                    self._unreported_drops += 1
                buf.append(item)
                self._submitted += 1
                crossed = len(buf) == self._batch_size
            if crossed:
                self._wake.set()
            if not self._started and self._started_before_fork:
                self.start()  # a forked child restarts its own sender on first use
        except Exception:
            pass

    def _settled(self, target: int) -> bool:
        with self._lock:
            return self._taken >= target and (
                self._inflight_start is None or self._inflight_start >= target
            )

    # -- sender thread ------------------------------------------------------------------

    def _run(self, threads: RealThreads) -> None:
        try:
            self._next_tick = time.monotonic() + self._flush_interval
            while not self._stopping or (self._flushing and not self._settled(self._submitted)):
                try:
                    self._step()
                except Exception:
                    logger.debug("sluice: sender step failed", exc_info=True)
                    self._wake.wait(0.1)
        finally:
            self._close_pool()
            if self._thread_done is not None:
                self._thread_done.release()

    def _step(self) -> None:
        now = time.monotonic()
        if self._inflight is None:
            urgent = self._flushing or len(self._buffer) >= self._batch_size
            if not urgent and now < self._next_tick:
                self._wake.wait(self._next_tick - now)
                return
            self._next_tick = now + self._flush_interval
            if not self._take_batch():
                if self._flushing:
                    self._wake.wait(_POLL_S)
                return
        not_before = self._not_before
        if self._flushing and not self._hard_wait:
            # a flush has a deadline: retry soon, but not in a tight loop
            not_before = min(not_before, self._last_attempt + _FLUSH_RETRY_S)
        if now < not_before:
            self._wake.wait(not_before - now)
            return
        self._last_attempt = now
        self._send_one()

    def _take_batch(self) -> bool:
        """Move up to batch_size items from the buffer into a new in-flight batch."""
        with self._lock:
            count = min(len(self._buffer), self._batch_size)
            report = self._unreported_drops if self._reachable else 0
            if count == 0 and report == 0:
                return False
            start = self._taken
            items = [self._buffer.popleft() for _ in range(count)]
            self._taken += count
            self._unreported_drops -= report
            self._inflight_start = start
            self._inflight_events = count
        encoded: list[bytes] = []
        if report:
            encoded.append(EVENT_ENCODER.encode(self._report_event(report)))
        invalid = 0
        for item in items:
            data = self._encode(item)
            if data is None:
                invalid += 1
            else:
                encoded.append(data)
        chunks = chunk(encoded, self._batch_size + 1)
        oversize = len(encoded) - sum(len(c) for c in chunks)
        # The report is first and small, so it always lands in the first chunk.
        built = [_Chunk(c, report if i == 0 else 0) for i, c in enumerate(chunks)]
        with self._lock:
            self._invalid += invalid
        self._add_drops(invalid + oversize)
        self._inflight = _Batch(built)
        if not built:
            self._settle()
        return True

    def _encode(self, item: Any) -> bytes | None:
        try:
            event = item if isinstance(item, Event) else self._prepare_item(item)
            return None if event is None else EVENT_ENCODER.encode(event)
        except Exception:
            return None

    def _prepare_item(self, item: Any) -> Event | None:
        if self._prepare is None:
            return None
        return self._prepare(item)

    def _report_event(self, count: int) -> Event:
        self._report_seq += 1
        now = time.time()
        key = dedup_key(SOURCE_DROPPED, self._hostname, self._hostname, self._report_seq, now)
        return Event(
            kind=SOURCE_DROPPED,
            timestamp=now,
            dedup_key=key,
            connection_id=self._connection_id,
            hostname=self._hostname,
            pid=os.getpid(),
            clock=self._report_seq,
            count=count,
        )

    def _add_drops(self, n: int, count_as_dropped: bool = True) -> None:
        if n <= 0:
            return
        with self._lock:
            if count_as_dropped:
                self._dropped += n
            self._unreported_drops += n

    def _settle(self) -> None:
        with self._lock:
            self._inflight = None
            self._inflight_start = None
            self._inflight_events = 0

    def _send_one(self) -> None:
        batch = self._inflight
        if batch is None:
            return
        if not batch.chunks:
            self._settle()
            return
        part = batch.chunks[0]
        status, retry_after, answer_body = self._post(part.body)
        if status is not None and 200 <= status < 300:
            self._on_success(part, answer_body)
        elif status == _SPLIT_STATUS and len(part.encoded) > 1:
            batch.chunks[0:1] = part.halves()  # sent at once: the server is up
            self._on_answered()
            return
        elif status == _SPLIT_STATUS and not part.failed:
            part.failed = True  # alone now: one more try, in case it was not the event
            self._on_retryable(status, retry_after)
            return
        elif status == _SPLIT_STATUS:
            self._on_poison(part)
        elif status is None or status >= 500 or status in _RETRY_STATUSES:
            self._on_retryable(status, retry_after)
            return
        else:
            self._on_refused(part, status)
        batch.chunks.pop(0)
        with self._lock:
            self._inflight_events = sum(c.events for c in batch.chunks)
        if not batch.chunks:
            self._settle()

    def _post(self, body: bytes) -> tuple[int | None, float | None, bytes]:
        if self._pool is None:
            self._pool = urllib3.PoolManager(num_pools=2, maxsize=1, retries=False)
        try:
            resp = self._pool.request(
                "POST",
                self._url,
                body=body,
                headers=self._headers,
                timeout=self._timeout,
                retries=False,
                redirect=False,
            )
        except Exception as exc:
            self._log_down(type(exc).__name__)
            return None, None, b""
        return resp.status, retry_after_seconds(resp.headers.get("Retry-After")), resp.data

    def _on_success(self, part: _Chunk, body: bytes) -> None:
        answer = decode_answer(body)
        if answer and answer.rejected:
            self._rejections.note(answer.rejected)
        rejected = len(answer.rejected) if answer else 0
        if answer and part.report:
            # the report itself is at index 0; it is not a user event
            rejected = sum(1 for r in answer.rejected if r.index != 0)
        with self._lock:
            self._sent += max(0, part.events - rejected)
            self._rejected += rejected
            self._duplicates += answer.duplicates if answer else 0
            self._batches += 1
        self._on_answered()

    def _on_answered(self) -> None:
        if not self._reachable and self._down_logged:
            logger.info("sluice: ingest reachable again")
        self._reachable = True
        self._down_logged = False
        self._attempt = 0
        self._not_before = 0.0
        self._hard_wait = False

    def _on_poison(self, part: _Chunk) -> None:
        """A lone event the server failed on twice: dropped, counted, logged, reported."""
        with self._lock:
            self._failed_attempts += 1
            if part.events:
                self._poisoned += 1
            poisoned = self._poisoned
        if part.events:
            self._add_drops(part.events)
            if poisoned <= _POISON_LOGS_IN_FULL or poisoned % 100 == 0:
                logger.error(
                    "sluice: ingest failed (HTTP 500) on an event sent alone, twice; dropping "
                    "it (%s; %d poison events so far)", _describe(part.encoded[0]), poisoned)
        if part.report:  # the drop report itself: its count goes into the next one
            self._add_drops(part.report, count_as_dropped=False)
        self._on_answered()

    def _on_retryable(self, status: int | None, retry_after: float | None) -> None:
        if status is not None:
            self._log_down(f"HTTP {status}")
        with self._lock:
            self._failed_attempts += 1
        self._reachable = False
        delay = backoff_delay(self._attempt, self._max_backoff)
        self._attempt += 1
        self._hard_wait = retry_after is not None
        if retry_after is not None:
            delay = retry_after
        self._not_before = time.monotonic() + delay

    def _on_refused(self, part: _Chunk, status: int) -> None:
        if status not in self._logged_statuses:
            self._logged_statuses.add(status)
            logger.error(
                "sluice: ingest refused a batch of %d events with HTTP %d; dropping it "
                "(check the API key, connection id and endpoint)",
                part.events,
                status,
            )
        with self._lock:
            self._failed_attempts += 1
        self._add_drops(part.events)
        if part.report:
            self._add_drops(part.report, count_as_dropped=False)
        self._attempt = 0
        self._not_before = 0.0
        self._hard_wait = False

    def _log_down(self, reason: str) -> None:
        if not self._down_logged:
            self._down_logged = True
            logger.warning("sluice: ingest unavailable (%s); buffering and retrying", reason)

    def _close_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            with contextlib.suppress(Exception):
                pool.clear()

    # -- fork ---------------------------------------------------------------------------

    def _after_fork_in_child(self) -> None:
        was_started = self._started or self._started_before_fork
        self._reset()
        self._started_before_fork = was_started


_LIVE: weakref.WeakSet[Transport] = weakref.WeakSet()


class _Identity(msgspec.Struct):
    kind: str = "?"
    job_id: str | None = None
    hostname: str | None = None
    queue: str | None = None
    dedup_key: str = ""


_IDENTITY: Final = msgspec.json.Decoder(_Identity)


def _describe(encoded: bytes) -> str:
    """What a log line may say of an event: its kind and whom it is about, never its data."""
    try:
        who = _IDENTITY.decode(encoded)
    except Exception:
        return "an undecodable event"
    about = " ".join(f"{name}={value!r}" for name, value in (
        ("job_id", who.job_id), ("hostname", who.hostname), ("queue", who.queue),
        ("dedup_key", who.dedup_key)) if value)
    return f"kind={who.kind!r} {about}".strip()


def _after_fork_in_child() -> None:
    for transport in list(_LIVE):
        with contextlib.suppress(Exception):
            transport._after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)
