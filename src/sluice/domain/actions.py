"""Management actions and the job states that allow each: the 400's rule and message."""

from __future__ import annotations

from enum import StrEnum

from .states import State


class Action(StrEnum):
    RETRY = "retry"
    REVOKE = "revoke"


ALLOWED_STATES: dict[Action, tuple[State, ...]] = {
    Action.RETRY: (State.FAILED, State.CANCELLED),
    Action.REVOKE: (
        State.ACTIVE,
        State.QUEUED,
        State.SCHEDULED,
        State.RETRYING,
        State.UNKNOWN,
    ),
}


class ActionNotAllowed(Exception):
    """An action asked of a job in a state that does not allow it."""

    def __init__(self, action: Action, state: State) -> None:
        allowed = ", ".join(s.value for s in ALLOWED_STATES[action])
        super().__init__(
            f"cannot {action.value} a job in state '{state.value}'; allowed in: {allowed}"
        )
        self.action = action
        self.state = state


def check_action(action: Action, state: State) -> None:
    """Raise ActionNotAllowed unless `action` is allowed for a job in `state`."""
    if state not in ALLOWED_STATES[action]:
        raise ActionNotAllowed(action, state)
