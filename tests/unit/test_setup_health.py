"""Setup findings (sluice.domain.health) from observations, and what the agent logs by
itself (sluice.agent.setup_watch): heartbeats without task events, task-received without
task-sent."""

from __future__ import annotations

import logging

import pytest

from sluice.agent.forward import Forwarder
from sluice.agent.health import Health
from sluice.agent.setup_watch import MIN_UNSENT, SetupWatch, Sightings
from sluice.domain import health as h
from sluice.domain.celery import normalize
from sluice.domain.events import Event
from sluice.domain.health import (
    HostAhead,
    Observations,
    PairSeen,
    SourceSeen,
    WorkerSeen,
    evaluate,
)

NOW = 1_800_000_000.0


def obs(**kw: object) -> Observations:
    base: dict[str, object] = {"now": NOW, "window_s": 900.0, "last_event_at": NOW - 1}
    return Observations(**{**base, **kw})  # type: ignore[arg-type]


def codes(o: Observations) -> list[str]:
    return [f.code for f in evaluate(o)]


def test_silence() -> None:
    [never] = evaluate(Observations(now=NOW, window_s=900.0))
    assert (never.code, never.severity) == (h.NO_EVENTS, "warning")
    [quiet] = evaluate(obs(last_event_at=NOW - 1200))
    assert quiet.code == h.NO_RECENT_EVENTS and quiet.evidence["silent_s"] == 1200
    assert "20 minutes" in quiet.message and "SLUICE_CONNECTION_ID" in quiet.setting
    assert codes(obs(last_event_at=NOW - 30)) == []


def test_heartbeats_without_task_events() -> None:
    idle = WorkerSeen("w1@h", heartbeats=400, task_events=0, processed_first=0,
                      processed_last=0, jobs_recorded=False)
    busy_blind = WorkerSeen("w2@h", heartbeats=400, task_events=0, processed_first=3,
                            processed_last=10, jobs_recorded=None)
    done_blind = WorkerSeen("w3@h", heartbeats=400, task_events=0, processed_first=10,
                            processed_last=10, jobs_recorded=False)
    seen = WorkerSeen("w4@h", heartbeats=400, task_events=30, processed_first=0,
                      processed_last=10, jobs_recorded=True)
    assert codes(obs(workers=[idle, seen])) == []
    [f] = evaluate(obs(workers=[idle, busy_blind, done_blind, seen]))
    assert (f.code, f.severity) == (h.TASK_EVENTS_MISSING, "error")
    assert [w["hostname"] for w in f.evidence["workers"]] == ["w2@h", "w3@h"]
    assert f.evidence["workers"][0]["processed_in_window"] == 7
    assert "worker_send_task_events" in f.setting and "-E" in f.setting


def test_received_without_sent() -> None:
    assert codes(obs(received_jobs=50, unsent_jobs=2, sent_events=0)) == []  # too few
    assert codes(obs(received_jobs=100, unsent_jobs=5, sent_events=95)) == []  # stragglers
    [none] = evaluate(obs(received_jobs=20, unsent_jobs=20, sent_events=0))
    assert none.code == h.TASK_SENT_MISSING and "no task-sent event at all" in none.message
    [some] = evaluate(obs(received_jobs=20, unsent_jobs=8, sent_events=12))
    assert "8 of 20" in some.message and "task_send_sent_event" in some.setting


def test_sources_and_capture() -> None:
    one = [SourceSeen("sdk", 100, 60, 0)]
    assert codes(obs(sources=one)) == []
    both = [SourceSeen("agent", 80, 50, 0), SourceSeen("sdk", 100, 60, 0)]
    [info] = evaluate(obs(sources=both))
    assert (info.code, info.severity) == (h.SDK_AND_AGENT, "info")
    assert info.evidence == {"sdk_events": 100, "agent_events": 80}
    mixed = [SourceSeen("agent", 80, 50, 50), SourceSeen("sdk", 100, 60, 0)]
    assert codes(obs(sources=mixed)) == [h.CAPTURE_MISMATCH, h.SDK_AND_AGENT]
    [mismatch, _] = evaluate(obs(sources=mixed))
    assert "the agent sends" in mismatch.message and "--capture-args" in mismatch.setting


def test_clock_skew() -> None:
    fine = [PairSeen("p@h", "w@h", 40, 0.3, 0.01)]
    assert codes(obs(pairs=fine, ahead=[HostAhead("w@h", 10, 0.5)])) == []
    [f] = evaluate(obs(pairs=[*fine, PairSeen("p@h", "w2@h", 40, -4.0, -4.2)]))
    assert f.code == h.CLOCK_SKEW and "w2@h receives jobs 4.0 s before p@h" in f.message
    [g] = evaluate(obs(ahead=[HostAhead("w3@h", 10, 30.0)]))
    assert g.evidence["ahead_of_server"][0]["hostname"] == "w3@h" and "NTP" in g.setting


def test_most_severe_first() -> None:
    found = evaluate(obs(
        last_event_at=NOW - 3600, sources=[SourceSeen("agent", 1), SourceSeen("sdk", 1)],
        workers=[WorkerSeen("w@h", 3, 0, 0, 5)]))
    assert [f.severity for f in found] == ["error", "warning", "info"]


# -- the agent, by itself -----------------------------------------------------------------

def beat(host: str, ts: float, processed: int) -> dict[str, object]:
    return {"type": "worker-heartbeat", "hostname": host, "timestamp": ts, "clock": int(ts),
            "processed": processed, "active": 0, "freq": 2.0}


def task(kind: str, job: str, host: str, ts: float) -> dict[str, object]:
    return {"type": kind, "uuid": job, "hostname": host, "timestamp": ts, "clock": int(ts)}


class Sink:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def submit(self, event: Event) -> None:
        self.events.append(event)

    def stats(self) -> dict[str, int]:
        return {}


def test_agent_logs_heartbeats_without_task_events_once(
        caplog: pytest.LogCaptureFixture) -> None:
    forward = Forwarder(Sink(), Health(), "c")
    forward.events([beat("w1@h", NOW + i * 2, i) for i in range(5)])
    forward.events([beat("w2@h", NOW + i * 2, i) for i in range(5)])
    forward.events([task("task-received", f"j{i}", "w2@h", NOW + i) for i in range(5)])
    caplog.set_level(logging.WARNING, "sluice.agent")
    assert forward.watch.check() == []  # once is not yet proof: task events trail beats
    [logged] = forward.watch.check()
    assert logged.code == h.TASK_EVENTS_MISSING
    assert [w["hostname"] for w in logged.evidence["workers"]] == ["w1@h"]
    assert forward.watch.check() == [] and forward.watch.check() == []  # once only
    lines = [r.getMessage() for r in caplog.records if "celery setup" in r.getMessage()]
    assert len(lines) == 1 and "worker_send_task_events" in lines[0] and "w1@h" in lines[0]


def test_agent_logs_received_without_sent(caplog: pytest.LogCaptureFixture) -> None:
    watch = SetupWatch()
    received = [normalize(task("task-received", f"j{i}", "w@h", NOW + i), "c")
                for i in range(MIN_UNSENT)]
    watch.see([e for e in received if isinstance(e, Event)])
    watch.check()
    [logged] = watch.check()
    assert logged.code == h.TASK_SENT_MISSING and logged.evidence["received_jobs"] == MIN_UNSENT
    sent = normalize(task("task-sent", "j0", "p@h", NOW), "c")
    assert isinstance(sent, Event)
    other = SetupWatch()
    other.see([e for e in received if isinstance(e, Event)] + [sent])
    assert other.check() == [] and other.check() == []


def test_worker_process_sightings_merge_like_one_pass() -> None:
    events = [e for e in (normalize(beat("w@h", NOW + i, i), "c") for i in range(10))
              if isinstance(e, Event)]
    whole, parts = Sightings(), Sightings()
    whole.see(events)
    for chunk in (events[6:], events[:3], events[3:6]):  # out of order, as the pool returns
        piece = Sightings()
        piece.see(chunk)
        parts.merge(piece)
    assert parts == whole
    assert (whole.beats["w@h"].first_processed, whole.beats["w@h"].last_processed) == (0, 9)
