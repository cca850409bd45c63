"""The eight unified job states."""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    UNKNOWN = "unknown"
    QUEUED = "queued"
    SCHEDULED = "scheduled"
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    RETRYING = "retrying"
    CANCELLED = "cancelled"


TERMINAL_STATES = frozenset({State.COMPLETED, State.FAILED, State.CANCELLED})
