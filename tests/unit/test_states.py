from __future__ import annotations

import pytest

from sluice.domain.actions import ALLOWED_STATES, Action, ActionNotAllowed, check_action
from sluice.domain.states import State


def test_eight_states() -> None:
    assert [s.value for s in State] == ["unknown", "queued", "scheduled", "active",
                                        "completed", "failed", "retrying", "cancelled"]


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("action", list(Action))
def test_actions_by_state(action: Action, state: State) -> None:
    if state in ALLOWED_STATES[action]:
        check_action(action, state)
    else:
        with pytest.raises(ActionNotAllowed) as err:
            check_action(action, state)
        assert state.value in str(err.value)
        assert all(s.value in str(err.value) for s in ALLOWED_STATES[action])


def test_retry_and_revoke_sets() -> None:
    assert set(ALLOWED_STATES[Action.RETRY]) == {State.FAILED, State.CANCELLED}
    assert set(ALLOWED_STATES[Action.REVOKE]) == {State.ACTIVE, State.QUEUED, State.SCHEDULED,
                                                 State.RETRYING, State.UNKNOWN}
