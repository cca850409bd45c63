"""Broker messages -> Celery event dicts -> unified events -> the sink. Shared by readers.

`Forwarder` does the work on the reader's thread. `ParallelForwarder` hands batches of raw
messages to worker processes that convert and send them: normalizing (~25 us an event)
and sending would otherwise share one interpreter's GIL with the reader.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.util
import os
import queue
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, Final

from sluice.domain.celery import normalize
from sluice.domain.events import SOURCE_AGENT, Event, Rejection
from sluice.transport import Transport

from .capture import Capture
from .envelope import Undecodable, decode_envelope
from .health import Health
from .setup_watch import SetupWatch, Sightings
from .sink import Sink

log = logging.getLogger("sluice.agent")

BATCH_MESSAGES: Final = 256
MAX_INFLIGHT: Final = 64  # batches; beyond this the reader waits and Redis buffers
STATS_REFRESH_S: Final = 2.0

Bad = list[tuple[str, str]]  # (kind, detail) of each undecodable message or event


_NO_CAPTURE: Final = Capture()


def convert(raws: Iterable[dict[str, Any]], connection_id: str | None,
            events: list[Event], bad: Bad, capture: Capture = _NO_CAPTURE) -> int:
    """Normalize Celery event dicts into `events` (arguments and results as `capture`
    says); rejections go to `bad`. Returns the number of dicts seen."""
    seen = 0
    apply = capture.apply
    for raw in raws:
        seen += 1
        event = normalize(raw, connection_id, source=SOURCE_AGENT)
        if isinstance(event, Rejection):
            bad.append((f"event rejected: {event.reason}", repr(raw)[:200]))
        else:
            events.append(apply(event))
    return seen


def convert_envelopes(payloads: list[bytes], connection_id: str | None,
                      capture: Capture = _NO_CAPTURE) -> tuple[list[Event], int, Bad]:
    events: list[Event] = []
    bad: Bad = []
    seen = 0
    for data in payloads:
        try:
            raws = decode_envelope(data)
        except Undecodable as exc:
            bad.append((exc.kind, exc.detail))
            continue
        seen += convert(raws, connection_id, events, bad, capture)
    return events, seen, bad


class Forwarder:
    """Converts on the caller's thread."""

    def __init__(self, sink: Sink, health: Health, connection_id: str | None,
                 capture: Capture = _NO_CAPTURE, watch: SetupWatch | None = None) -> None:
        self.sink = sink
        self.health = health
        self.connection_id = connection_id
        self.capture = capture
        self.watch = watch or SetupWatch()

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
        self.health.events_in += convert(raws, self.connection_id, events, bad, self.capture)
        self.deliver(events, bad)

    def deliver(self, events: list[Event], bad: Bad) -> None:
        health, submit = self.health, self.sink.submit
        for kind, detail in bad:
            health.count_undecodable(kind, detail)
        for event in events:
            submit(event)
        if events:
            health.observe(events[-1].timestamp)
            self.watch.see(events)

    def flush(self) -> None:
        """The reader drained its socket: nothing is held here."""

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class TransportSpec:
    """How a worker process builds its own Transport (a Transport cannot cross processes)."""

    endpoint: str
    api_key: str
    connection_id: str
    max_buffer: int = 10_000
    batch_size: int = 500


_WORKER_SINK: Transport | None = None  # the worker process's own
_WORKER_CAPTURE: Capture = _NO_CAPTURE


def _init_worker(spec: TransportSpec, capture: Capture = _NO_CAPTURE) -> None:
    global _WORKER_SINK, _WORKER_CAPTURE
    _WORKER_CAPTURE = capture
    transport = Transport(spec.endpoint, spec.api_key, spec.connection_id,
                          max_buffer=spec.max_buffer, batch_size=spec.batch_size)
    transport.start()
    # Runs when the pool shuts the worker down: what it still buffers is sent first.
    multiprocessing.util.Finalize(transport, transport.close, args=(5.0,), exitpriority=10)
    _WORKER_SINK = transport


WorkResult = tuple[int, Bad, float | None, int, dict[str, int], Sightings]


def _work_and_send(payloads: list[bytes], connection_id: str | None) -> WorkResult:
    """In a worker: convert and send. Only counts go back to the main process."""
    events, seen, bad = convert_envelopes(payloads, connection_id, _WORKER_CAPTURE)
    sink = _WORKER_SINK
    if sink is None:
        raise RuntimeError("worker started without its transport")
    submit = sink.submit
    for event in events:
        submit(event)
    last = events[-1].timestamp if events else None
    sightings = Sightings()
    sightings.see(events)
    return seen, bad, last, os.getpid(), sink.stats(), sightings


def _worker_stats(flush: bool = False) -> tuple[int, dict[str, int]]:
    if _WORKER_SINK is None:
        return os.getpid(), {}
    if flush:
        _WORKER_SINK.flush(5.0)
    return os.getpid(), _WORKER_SINK.stats()


class TransportStats:
    """The transport counters of the whole agent: its own Transport (queue samples) plus
    the latest report of each worker's."""

    def __init__(self, own: Callable[[], dict[str, int]]) -> None:
        self.own = own
        self.workers: dict[int, dict[str, int]] = {}

    def __call__(self) -> dict[str, int]:
        total = dict(self.own())
        for stats in list(self.workers.values()):
            for key, value in stats.items():
                total[key] = total.get(key, 0) + value
        return total


class ParallelForwarder(Forwarder):
    """Batches raw payloads to worker processes, each of which converts them and sends with
    a Transport of its own: the main process only reads the socket. A collector thread
    gathers the counts. Arrival order at the API is not kept across workers (the job fold
    does not depend on it)."""

    def __init__(self, sink: Sink, health: Health, connection_id: str | None,
                 workers: int, spec: TransportSpec, stats: TransportStats,
                 capture: Capture = _NO_CAPTURE, watch: SetupWatch | None = None) -> None:
        super().__init__(sink, health, connection_id, capture, watch)
        self.workers = workers
        self.spec = spec
        self.stats = stats
        self.pool = self._new_pool()
        self.batch: list[bytes] = []
        self.pool_failed = False
        self.inflight: queue.Queue[Future[WorkResult] | None] = queue.Queue(MAX_INFLIGHT)
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
        if not self.pool_failed:
            try:
                self.inflight.put(self._submit(batch))  # blocks at MAX_INFLIGHT pending
                return
            except Exception as exc:  # not even a fresh pool works: convert here from now on
                log.warning("agent worker pool unavailable (%s); converting in-thread", exc)
                self.pool_failed = True
        events, seen, bad = convert_envelopes(batch, self.connection_id, self.capture)
        self.health.events_in += seen
        self.deliver(events, bad)

    def _submit(self, batch: list[bytes]) -> Future[WorkResult]:
        try:
            return self.pool.submit(_work_and_send, batch, self.connection_id)
        except Exception as exc:  # e.g. a worker was OOM-killed: the pool is broken
            log.warning("agent worker pool failed (%s); restarting it", exc)
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.stats.workers.clear()
            self.pool = self._new_pool()
            return self.pool.submit(_work_and_send, batch, self.connection_id)

    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn, not fork: the agent has threads (and locks) a forked child would inherit.
        return ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker, initargs=(self.spec, self.capture))

    def _refresh_stats(self, flush: bool = False) -> None:
        """Ask the workers for their transport counters (sent, dropped), which otherwise
        are only as fresh as the last batch: when idle, and (flushing) before shutdown."""
        try:
            probes = [self.pool.submit(_worker_stats, flush) for _ in range(self.workers)]
            for probe in probes:
                pid, stats = probe.result(timeout=10)
                self.stats.workers[pid] = stats
        except Exception:  # a broken pool is dealt with on the next batch
            log.debug("worker stats probe failed", exc_info=True)

    def _collect(self) -> None:
        health = self.health
        while True:
            try:
                future = self.inflight.get(timeout=STATS_REFRESH_S)
            except queue.Empty:
                if not self.pool_failed:
                    self._refresh_stats()
                continue
            if future is None:
                return
            try:
                seen, bad, last, pid, stats, sightings = future.result()
            except Exception as exc:
                log.warning("agent worker lost a batch: %s", exc)
                health.count_undecodable("batch lost in a worker", str(exc))
                continue
            health.events_in += seen
            for kind, detail in bad:
                health.count_undecodable(kind, detail)
            if last is not None:
                health.observe(last)
            self.watch.merge(sightings)
            self.stats.workers[pid] = stats

    def close(self) -> None:
        self.flush()
        self.inflight.put(None)
        self.collector.join(30)
        if not self.pool_failed:
            self._refresh_stats(flush=True)
        self.pool.shutdown(wait=True)  # each worker closes its Transport as it exits
