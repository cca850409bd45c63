"""A connection's setup findings: what its recent traffic says is missing from the Celery
configuration, each with the setting that fixes it.

Pure rules over `Observations`, which the server fills from a bounded sample of the log
(`sluice.service.connection_health`) and the agent from what it has read itself.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Final

import msgspec

from .events import SOURCE_AGENT, SOURCE_SDK


class Severity(StrEnum):
    ERROR = "error"  # jobs are missing or wrong
    WARNING = "warning"  # some facts are missing or doubtful
    INFO = "info"  # worth knowing, nothing is lost


# Finding codes: stable, scripts match on them.
NO_EVENTS: Final = "no_events"
NO_RECENT_EVENTS: Final = "no_recent_events"
TASK_EVENTS_MISSING: Final = "task_events_missing"
TASK_SENT_MISSING: Final = "task_sent_missing"
SDK_AND_AGENT: Final = "sdk_and_agent"
CAPTURE_MISMATCH: Final = "capture_args_mismatch"
CLOCK_SKEW: Final = "clock_skew"

# The Celery settings, by their names in Celery's configuration (and command line).
TASK_EVENTS_SETTING: Final = (
    "worker_send_task_events = True on every worker (or start them with `celery worker -E`)")
SENT_EVENT_SETTING: Final = (
    "task_send_sent_event = True wherever tasks are sent (producers, and workers that retry "
    "or chain); sluice.init() sets it in the processes that call it")
SOURCE_SETTING: Final = (
    "nothing to change; to halve the traffic run only one of them (the SDK, or `sluice "
    "agent`), and if both stay, give them the same capture_args")
CAPTURE_SETTING: Final = (
    "the same on both paths: sluice.init(capture_args=True) with `sluice agent "
    "--capture-args`, or neither")
CLOCK_SETTING: Final = "synchronize the hosts' clocks (NTP: chrony or systemd-timesyncd)"
SILENCE_SETTING: Final = (
    "check that the SDK (sluice.init() in the Celery app) or `sluice agent --broker URL` "
    "runs with this connection's SLUICE_CONNECTION_ID, SLUICE_API_KEY and SLUICE_ENDPOINT")


class Finding(msgspec.Struct, frozen=True):
    code: str
    severity: str
    message: str
    setting: str  # what fixes it
    evidence: dict[str, Any]


class WorkerSeen(msgspec.Struct, frozen=True):
    """One worker over the window: its heartbeats, its own task events, and the `processed`
    counter its heartbeats carry (first and last in the window)."""

    hostname: str
    heartbeats: int
    task_events: int
    processed_first: int | None = None
    processed_last: int | None = None
    # None: not known (the agent has no read model to ask)
    jobs_recorded: bool | None = None


class SourceSeen(msgspec.Struct, frozen=True):
    """Events of one source over the window. `carrying`: events of kinds that can carry
    arguments or results (sent, received, succeeded); `with_values`: those that did."""

    source: str
    events: int
    carrying: int = 0
    with_values: int = 0


class PairSeen(msgspec.Struct, frozen=True):
    """Jobs sent by `producer` and received by `worker`, both in the window: the received
    time minus the sent time (each by its own host's clock)."""

    producer: str | None
    worker: str | None
    jobs: int
    median_s: float
    min_s: float


class HostAhead(msgspec.Struct, frozen=True):
    """How far a host's event times run ahead of when the server stored them."""

    hostname: str
    events: int
    ahead_s: float


class Observations(msgspec.Struct, frozen=True, kw_only=True):
    now: float  # server time, epoch seconds
    window_s: float
    last_event_at: float | None = None  # when the latest event of any age was stored
    events: int = 0  # in the window (up to the sample's cap)
    capped: bool = False  # the window held more events than the sample took
    received_jobs: int = 0  # jobs received by a worker in the window
    unsent_jobs: int = 0  # of those, jobs never seen being sent
    sent_events: int = 0
    workers: list[WorkerSeen] = []
    sources: list[SourceSeen] = []
    pairs: list[PairSeen] = []
    ahead: list[HostAhead] = []


class Thresholds(msgspec.Struct, frozen=True):
    silence_s: float = 600.0  # no event for this long: no_recent_events
    min_jobs: int = 3  # fewer unsent jobs than this prove nothing
    unsent_ratio: float = 0.2
    skew_s: float = 1.0  # a job received this long before it was sent
    ahead_s: float = 2.0  # events stamped this far after the server stored them


def _minutes(seconds: float) -> str:
    minutes = seconds / 60
    return f"{minutes:.0f} minute{'s' if round(minutes) != 1 else ''}"


def silence(obs: Observations, th: Thresholds) -> Finding | None:
    if obs.last_event_at is None:
        return Finding(NO_EVENTS, Severity.WARNING,
                       "no event has ever been received on this connection",
                       SILENCE_SETTING, {"last_event_at": None})
    quiet = obs.now - obs.last_event_at
    if quiet < th.silence_s:
        return None
    return Finding(NO_RECENT_EVENTS, Severity.WARNING,
                   f"no event received for {_minutes(quiet)} (Celery workers send a "
                   "heartbeat every 2 s: neither the SDK nor the agent is reporting)",
                   SILENCE_SETTING,
                   {"last_event_at": obs.last_event_at, "silent_s": round(quiet, 1),
                    "threshold_s": th.silence_s})


def task_events_missing(workers: list[WorkerSeen]) -> Finding | None:
    """Workers that heartbeat and count processed tasks but report none of them: Celery
    sends heartbeats without -E, task events only with it."""
    silent = []
    for w in workers:
        if w.heartbeats == 0 or w.task_events > 0:
            continue
        advanced = (w.processed_first is not None and w.processed_last is not None
                    and w.processed_last > w.processed_first)
        unrecorded = (w.jobs_recorded is False and w.processed_last is not None
                      and w.processed_last > 0)
        if advanced or unrecorded:
            silent.append(w)
    if not silent:
        return None
    names = ", ".join(w.hostname for w in silent[:5]) + (", ..." if len(silent) > 5 else "")
    return Finding(
        TASK_EVENTS_MISSING, Severity.ERROR,
        f"{len(silent)} worker(s) send heartbeats and count processed tasks but send no task "
        f"events, so their jobs are invisible: {names}",
        TASK_EVENTS_SETTING,
        {"workers": [{"hostname": w.hostname, "heartbeats": w.heartbeats,
                      "task_events": w.task_events, "processed": w.processed_last,
                      "processed_in_window": None if w.processed_first is None
                      or w.processed_last is None else w.processed_last - w.processed_first,
                      "jobs_recorded": w.jobs_recorded} for w in silent[:20]]})


def task_sent_missing(received_jobs: int, unsent_jobs: int, sent_events: int,
                      th: Thresholds) -> Finding | None:
    """Jobs workers received that no producer announced: without task-sent a job appears
    only once a worker takes it (no queue, no waiting jobs, a countdown job revoked before
    its ETA keeps its last state)."""
    if unsent_jobs < th.min_jobs or unsent_jobs < th.unsent_ratio * received_jobs:
        return None
    what = ("no task-sent event at all" if sent_events == 0
            else f"{unsent_jobs} of {received_jobs} received jobs were never seen being sent")
    return Finding(
        TASK_SENT_MISSING, Severity.WARNING,
        f"{what}: waiting jobs stay invisible and jobs have no queue until a worker "
        "takes them",
        SENT_EVENT_SETTING,
        {"received_jobs": received_jobs, "unsent_jobs": unsent_jobs,
         "sent_events": sent_events})


def _by_source(obs: Observations) -> dict[str, SourceSeen]:
    return {s.source: s for s in obs.sources}


def both_sources(obs: Observations) -> Finding | None:
    seen = _by_source(obs)
    sdk, agent = seen.get(SOURCE_SDK), seen.get(SOURCE_AGENT)
    if not sdk or not agent or not sdk.events or not agent.events:
        return None
    return Finding(
        SDK_AND_AGENT, Severity.INFO,
        "both the SDK and the agent report this connection's events: each Celery event is "
        "stored once (whichever copy arrives first), the other is counted as a duplicate",
        SOURCE_SETTING,
        {"sdk_events": sdk.events, "agent_events": agent.events})


def capture_mismatch(obs: Observations) -> Finding | None:
    """One source sends arguments or results and the other does not: a job then shows them
    or not depending on which copy arrived first."""
    seen = _by_source(obs)
    sdk, agent = seen.get(SOURCE_SDK), seen.get(SOURCE_AGENT)
    if not sdk or not agent or not sdk.carrying or not agent.carrying:
        return None
    if (sdk.with_values > 0) == (agent.with_values > 0):
        return None
    sends, lacks = ("SDK", "agent") if sdk.with_values else ("agent", "SDK")
    return Finding(
        CAPTURE_MISMATCH, Severity.WARNING,
        f"the {sends} sends task arguments or results and the {lacks} does not: a job "
        "shows them only when the first copy of its events came from the " + sends,
        CAPTURE_SETTING,
        {"sdk": {"events": sdk.carrying, "with_values": sdk.with_values},
         "agent": {"events": agent.carrying, "with_values": agent.with_values}})


def clock_skew(obs: Observations, th: Thresholds) -> Finding | None:
    behind = [p for p in obs.pairs if p.median_s < -th.skew_s]
    ahead = [h for h in obs.ahead if h.ahead_s > th.ahead_s]
    if not behind and not ahead:
        return None
    parts = [f"{p.worker} receives jobs {-p.median_s:.1f} s before {p.producer} sends them"
             for p in behind[:3]]
    parts += [f"{h.hostname} stamps events {h.ahead_s:.1f} s after the server stored them"
              for h in ahead[:3]]
    return Finding(
        CLOCK_SKEW, Severity.WARNING,
        "host clocks disagree (" + "; ".join(parts) + "): Sluice orders each job's events "
        "correctly anyway, but wait times, runtimes and the timeline are off by as much",
        CLOCK_SETTING,
        {"producer_worker": [msgspec.structs.asdict(p) for p in behind[:20]],
         "ahead_of_server": [msgspec.structs.asdict(h) for h in ahead[:20]],
         "threshold_s": th.skew_s})


_ORDER: Final = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}


def evaluate(obs: Observations, th: Thresholds | None = None) -> list[Finding]:
    """Every finding, the most severe first."""
    th = th or Thresholds()
    found = [
        silence(obs, th),
        task_events_missing(obs.workers),
        task_sent_missing(obs.received_jobs, obs.unsent_jobs, obs.sent_events, th),
        capture_mismatch(obs),
        clock_skew(obs, th),
        both_sources(obs),
    ]
    return sorted((f for f in found if f is not None),
                  key=lambda f: _ORDER[Severity(f.severity)])
