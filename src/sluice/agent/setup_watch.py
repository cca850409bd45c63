"""What the agent can tell about the Celery setup by itself, logged once: workers that
heartbeat and count processed tasks but send no task events (no -E), and tasks received
with no task-sent event at all (task_send_sent_event off). The rules are the server's
(`sluice.domain.health`); the server's report (`sluice doctor`) sees more."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from sluice.domain import events as ev
from sluice.domain.events import Event
from sluice.domain.health import (
    Finding,
    Thresholds,
    WorkerSeen,
    task_events_missing,
    task_sent_missing,
)

log = logging.getLogger("sluice.agent")

MAX_HOSTS: Final = 10_000  # hostnames tracked at most (workers are far fewer)
# Received jobs the agent must see, with no task-sent at all, before it says so: a backlog
# sent before it started is received without one.
MIN_UNSENT: Final = 10
_HEARTBEATS: Final = frozenset({ev.WORKER_ONLINE, ev.WORKER_HEARTBEAT})
_WORKER_TASK_KINDS: Final = ev.JOB_KINDS - {ev.JOB_SENT}


@dataclass
class Beats:
    count: int = 0
    first_ts: float = 0.0
    first_processed: int | None = None
    last_ts: float = 0.0
    last_processed: int | None = None

    def see(self, ts: float, processed: int | None) -> None:
        self.count += 1
        self._bounds(ts, processed, ts, processed)

    def merge(self, other: Beats) -> None:
        self.count += other.count
        self._bounds(other.first_ts, other.first_processed, other.last_ts,
                     other.last_processed)

    def _bounds(self, first_ts: float, first: int | None, last_ts: float,
                last: int | None) -> None:
        # batches reach the agent out of order: the earliest and latest by source time
        if first is not None and (self.first_processed is None or first_ts < self.first_ts):
            self.first_ts, self.first_processed = first_ts, first
        if last is not None and (self.last_processed is None or last_ts >= self.last_ts):
            self.last_ts, self.last_processed = last_ts, last


@dataclass
class Sightings:
    """Counts over the events read (picklable: worker processes send theirs back)."""

    beats: dict[str, Beats] = field(default_factory=dict)
    task_events: dict[str, int] = field(default_factory=dict)
    received: int = 0
    sent: int = 0

    def see(self, events: Iterable[Event]) -> None:
        for e in events:
            kind = e.kind
            if kind in _HEARTBEATS and e.hostname:
                beats = self.beats.get(e.hostname)
                if beats is None:
                    if len(self.beats) >= MAX_HOSTS:
                        continue
                    beats = self.beats[e.hostname] = Beats()
                beats.see(e.timestamp, e.processed)
            elif kind == ev.JOB_SENT:
                self.sent += 1
            elif kind in _WORKER_TASK_KINDS:
                if kind == ev.JOB_RECEIVED:
                    self.received += 1
                host = e.hostname or ""
                if host in self.task_events or len(self.task_events) < MAX_HOSTS:
                    self.task_events[host] = self.task_events.get(host, 0) + 1

    def merge(self, other: Sightings) -> None:
        for host, theirs in other.beats.items():
            mine = self.beats.get(host)
            if mine is None:
                if len(self.beats) < MAX_HOSTS:
                    self.beats[host] = Beats(**theirs.__dict__)
                continue
            mine.merge(theirs)
        for host, n in other.task_events.items():
            if host in self.task_events or len(self.task_events) < MAX_HOSTS:
                self.task_events[host] = self.task_events.get(host, 0) + n
        self.received += other.received
        self.sent += other.sent

    def findings(self) -> list[Finding]:
        workers = [WorkerSeen(host, b.count, self.task_events.get(host, 0),
                              b.first_processed, b.last_processed)
                   for host, b in self.beats.items()]
        found = [
            task_events_missing(workers),
            task_sent_missing(self.received, self.received if self.sent == 0 else 0,
                              self.sent, Thresholds(min_jobs=MIN_UNSENT)),
        ]
        return [f for f in found if f is not None]


class SetupWatch:
    """Collects sightings from any thread; `check()` (called periodically) logs a finding
    once, when two checks in a row found it (task events trail heartbeats by a moment)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sightings = Sightings()
        self._previous: set[str] = set()
        self.reported: set[str] = set()

    def see(self, events: Iterable[Event]) -> None:
        with self._lock:
            self._sightings.see(events)

    def merge(self, sightings: Sightings) -> None:
        with self._lock:
            self._sightings.merge(sightings)

    def check(self) -> list[Finding]:
        """The findings logged by this call."""
        with self._lock:
            found = self._sightings.findings()
        now = {f.code for f in found}
        logged = []
        for finding in found:
            code = finding.code
            if code in self._previous and code not in self.reported:
                self.reported.add(code)
                logged.append(finding)
                log.warning("celery setup: %s [%s]; fix: %s; evidence: %s", finding.message,
                            code, finding.setting, finding.evidence)
        self._previous = now
        return logged
