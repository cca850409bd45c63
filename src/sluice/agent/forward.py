"""Broker messages -> Celery event dicts -> unified events -> the sink. Shared by readers.

`Forwarder` does the work on the reader's thread. `ParallelForwarder` hands batches of raw
messages to worker processes: normalizing costs ~25 us an event, so one interpreter
(GIL) caps the agent near 30,000 events/s; the reader and the transport keep the main
process busy enough without it.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import threading
from collections.abc import Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, Final

from sluice.domain.celery import normalize
from sluice.domain.events import EVENT_ENCODER, EVENT_LIST_DECODER, Event, Rejection

from .envelope import Undecodable, decode_envelope
from .health import Health
from .sink import Sink

log = logging.getLogger("sluice.agent")

BATCH_MESSAGES: Final = 256
MAX_INFLIGHT: Final = 64  # batches; beyond this the reader waits and Redis buffers

Bad = list[tuple[str, str]]  # (kind, detail) of each undecodable message or event


def convert(raws: Iterable[dict[str, Any]], connection_id: str | None,
            events: list[Event], bad: Bad) -> int:
    """Normalize Celery event dicts into `events`; rejections go to `bad`. Returns the
    number of dicts seen."""
    seen = 0
    for raw in raws:
        seen += 1
        event = normalize(raw, connection_id)
        if isinstance(event, Rejection):
            bad.append((f"event rejected: {event.reason}", repr(raw)[:200]))
        else:
            events.append(event)
    return seen


def convert_envelopes(payloads: list[bytes], connection_id: str | None
                      ) -> tuple[list[Event], int, Bad]:
    events: list[Event] = []
    bad: Bad = []
    seen = 0
    for data in payloads:
        try:
            raws = decode_envelope(data)
        except Undecodable as exc:
            bad.append((exc.kind, exc.detail))
            continue
        seen += convert(raws, connection_id, events, bad)
    return events, seen, bad


def _work(payloads: list[bytes], connection_id: str | None) -> tuple[bytes, int, Bad]:
    """In a worker process: events go back msgspec-encoded (cheaper than pickling)."""
    events, seen, bad = convert_envelopes(payloads, connection_id)
    return EVENT_ENCODER.encode(events), seen, bad


class Forwarder:
    """Converts on the caller's thread."""

    def __init__(self, sink: Sink, health: Health, connection_id: str | None) -> None:
        self.sink = sink
        self.health = health
        self.connection_id = connection_id

    def envelope(self, data: bytes | str) -> None:
        """A Redis pub/sub payload. Never raises: bad input is counted, not fatal."""
        try:
            raws = decode_envelope(data)
        except Undecodable as exc:
            self.health.count_undecodable(exc.kind, exc.detail)
            return
        self.events(raws)

    def events(self, raws: list[dict[str, Any]]) -> None:
        events: list[Event] = []
        bad: Bad = []
        self.health.events_in += convert(raws, self.connection_id, events, bad)
        self.deliver(events, bad)

    def deliver(self, events: list[Event], bad: Bad) -> None:
        health, submit = self.health, self.sink.submit
        for kind, detail in bad:
            health.count_undecodable(kind, detail)
        for event in events:
            submit(event)
        if events:
            health.observe(events[-1].timestamp)

    def flush(self) -> None:
        """The reader drained its socket: nothing is held here."""

    def close(self) -> None:
        pass


class ParallelForwarder(Forwarder):
    """Batches raw payloads to a process pool; a collector thread submits the results in
    arrival order."""

    def __init__(self, sink: Sink, health: Health, connection_id: str | None,
                 workers: int) -> None:
        super().__init__(sink, health, connection_id)
        self.workers = workers
        self.pool = self._new_pool()
        self.batch: list[bytes] = []
        self.pool_failed = False
        self.inflight: queue.Queue[Future[tuple[bytes, int, Bad]] | None] = queue.Queue(
            MAX_INFLIGHT)
        self.collector = threading.Thread(target=self._collect, name="sluice-agent-collect",
                                          daemon=True)
        self.collector.start()

    def envelope(self, data: bytes | str) -> None:
        self.batch.append(data.encode() if isinstance(data, str) else data)
        if len(self.batch) >= BATCH_MESSAGES:
            self.flush()

    def flush(self) -> None:
        if not self.batch:
            return
        batch, self.batch = self.batch, []
        future: Future[tuple[bytes, int, Bad]] | None = None
        if not self.pool_failed:
            try:
                future = self._submit(batch)
            except Exception as exc:  # not even a fresh pool works: convert here from now on
                log.warning("agent worker pool unavailable (%s); converting in-thread", exc)
                self.pool_failed = True
        if future is None:
            future = Future()
            future.set_result(_work(batch, self.connection_id))
        self.inflight.put(future)  # blocks when MAX_INFLIGHT batches are pending

    def _submit(self, batch: list[bytes]) -> Future[tuple[bytes, int, Bad]]:
        try:
            return self.pool.submit(_work, batch, self.connection_id)
        except Exception as exc:  # e.g. a worker was OOM-killed: the pool is broken
            log.warning("agent worker pool failed (%s); restarting it", exc)
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = self._new_pool()
            return self.pool.submit(_work, batch, self.connection_id)

    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn, not fork: the agent has threads (and locks) a forked child would inherit.
        return ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))

    def _collect(self) -> None:
        while True:
            future = self.inflight.get()
            if future is None:
                return
            try:
                encoded, seen, bad = future.result()
            except Exception as exc:
                log.warning("agent worker lost a batch: %s", exc)
                self.health.count_undecodable("batch lost in a worker", str(exc))
                continue
            self.health.events_in += seen
            self.deliver(EVENT_LIST_DECODER.decode(encoded), bad)

    def close(self) -> None:
        self.flush()
        self.inflight.put(None)
        self.collector.join(10)
        self.pool.shutdown(wait=True, cancel_futures=True)
