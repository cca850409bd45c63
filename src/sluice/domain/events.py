"""Unified events: the one wire and storage shape for every source (SDK, agent, API)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Final

import msgspec

# Kinds of events about a job, a worker or a queue. Extend; never rename (public contract).
JOB_SENT: Final = "job.sent"
JOB_RECEIVED: Final = "job.received"
JOB_STARTED: Final = "job.started"
JOB_SUCCEEDED: Final = "job.succeeded"
JOB_FAILED: Final = "job.failed"
JOB_RETRIED: Final = "job.retried"
JOB_REVOKED: Final = "job.revoked"
JOB_REJECTED: Final = "job.rejected"
# Celery 5.5+ task-cancelled: a running task interrupted by a lost broker connection.
JOB_INTERRUPTED: Final = "job.interrupted"
# A framework event type Sluice does not know yet: stored, never folded into state.
JOB_OTHER: Final = "job.other"
WORKER_ONLINE: Final = "worker.online"
WORKER_HEARTBEAT: Final = "worker.heartbeat"
WORKER_OFFLINE: Final = "worker.offline"
WORKER_OTHER: Final = "worker.other"
QUEUE_SAMPLED: Final = "queue.sampled"
# Kinds the server writes about its own decisions (commands, and later alerts, audit,
# configuration, processors' findings) share these namespaces: see `written_by_server`.
COMMAND_RETRY: Final = "command.retry"
COMMAND_REVOKE: Final = "command.revoke"
# A command's life in the log (domain.commands): asked for, claimed by an agent executor,
# done or not (one outcome per command), revokes re-sent to a worker that came back.
COMMAND_REQUESTED: Final = "command.requested"
COMMAND_RUNNING: Final = "command.running"
COMMAND_SUCCEEDED: Final = "command.succeeded"
COMMAND_FAILED: Final = "command.failed"
COMMAND_RESENT: Final = "command.resent"
# Events the sender dropped (buffer full): reported so the loss is visible, not silent.
SOURCE_DROPPED: Final = "source.dropped"

JOB_KINDS: Final = frozenset(
    {
        JOB_SENT,
        JOB_RECEIVED,
        JOB_STARTED,
        JOB_SUCCEEDED,
        JOB_FAILED,
        JOB_RETRIED,
        JOB_REVOKED,
        JOB_REJECTED,
        JOB_INTERRUPTED,
        JOB_OTHER,
    }
)
WORKER_KINDS: Final = frozenset({WORKER_ONLINE, WORKER_HEARTBEAT, WORKER_OFFLINE, WORKER_OTHER})
WORKER_STATUS_KINDS: Final = frozenset({WORKER_ONLINE, WORKER_HEARTBEAT, WORKER_OFFLINE})
COMMAND_KINDS: Final = frozenset({COMMAND_RETRY, COMMAND_REVOKE, COMMAND_REQUESTED,
                                  COMMAND_RUNNING, COMMAND_SUCCEEDED, COMMAND_FAILED,
                                  COMMAND_RESENT})
KINDS: Final = JOB_KINDS | WORKER_KINDS | COMMAND_KINDS | {QUEUE_SAMPLED, SOURCE_DROPPED}

FRAMEWORKS: Final = frozenset({"celery"})
SOURCE_SDK: Final = "sdk"
SOURCE_AGENT: Final = "agent"

# Namespaces of the kinds only the server writes. Any kind in them, known today or added
# later, is refused from a source (SDK, agent, API client) and kept in the system stream.
SERVER_NAMESPACES: Final = ("command.", "alert.", "audit.", "config.", "processor.")


class Stream(StrEnum):
    """The log's two streams. Traffic (what Celery did, reported by the SDK and the agent)
    expires with each connection's retention; the system's own events (commands, alerts,
    audit, configuration, processor decisions) stay until an admin purges them, so a rebuild
    from the log never loses them."""

    TRAFFIC = "traffic"
    SYSTEM = "system"


def written_by_server(kind: str) -> bool:
    """Whether only the server may write events of this kind (the one rule ingest applies)."""
    return kind.startswith(SERVER_NAMESPACES)


def stream_of(kind: str) -> Stream:
    return Stream.SYSTEM if written_by_server(kind) else Stream.TRAFFIC


class Event(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """One unified event. Fields without a unified column live in `extensions`."""

    kind: str
    timestamp: float  # source time, seconds since the epoch (UTC)
    # identity of the source event; derived by `dedup.dedup_key` when a sender leaves it empty
    dedup_key: str = ""
    framework: str = "celery"
    connection_id: str | None = None
    # who reported it: SOURCE_SDK or SOURCE_AGENT (None from other clients); not part of the
    # identity, so the same Celery event from both is still stored once
    source: str | None = None
    # about whom
    job_id: str | None = None
    hostname: str | None = None
    queue: str | None = None
    # source ordering facts
    clock: int | None = None
    pid: int | None = None
    utcoffset: float | None = None
    # job facts
    name: str | None = None
    args: str | None = None
    kwargs: str | None = None
    retries: int | None = None
    eta: str | None = None
    expires: str | None = None
    parent_id: str | None = None
    root_id: str | None = None
    group_id: str | None = None
    routing_key: str | None = None
    exchange: str | None = None
    result: str | None = None
    runtime: float | None = None
    exception: str | None = None
    traceback: str | None = None
    # worker facts
    freq: float | None = None
    active: int | None = None
    processed: int | None = None
    loadavg: list[float] | None = None
    sw_ident: str | None = None
    sw_ver: str | None = None
    sw_sys: str | None = None
    # queue facts
    depth: int | None = None
    consumers: int | None = None
    # counts a sender reports about itself (source.dropped)
    count: int | None = None
    extensions: dict[str, Any] = {}


class Rejection(msgspec.Struct, frozen=True):
    """Why an input could not become an Event. `field` names the offending field."""

    reason: str
    field: str | None = None


EVENT_ENCODER: Final = msgspec.json.Encoder()
EVENT_DECODER: Final = msgspec.json.Decoder(Event)
