from __future__ import annotations

import pytest

from ferryman.errors import InvalidTransition
from ferryman.jobs import TERMINAL_STATES, JobState, check_transition

Q, D, R = JobState.QUEUED, JobState.DISPATCHED, JobState.RUNNING
S, F, C, E = JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.EXPIRED

# DESIGN §2: queued → dispatched → running → succeeded | failed | cancelled | expired;
# a lapsed lease or a lost worker re-queues
ALLOWED = {
    (Q, D),
    (Q, C),
    (Q, E),
    (Q, F),
    (D, R),
    (D, Q),
    (D, S),
    (D, F),
    (D, C),
    (R, Q),
    (R, S),
    (R, F),
    (R, C),
}
DENIED = sorted({(a, b) for a in JobState for b in JobState} - ALLOWED)


@pytest.mark.parametrize(("current", "to"), sorted(ALLOWED))
def test_check_transition_allows_lifecycle_move(current: JobState, to: JobState) -> None:
    check_transition(current, to)


@pytest.mark.parametrize(("current", "to"), DENIED)
def test_check_transition_raises_naming_both_states_when_move_is_not_in_lifecycle(
    current: JobState,
    to: JobState,
) -> None:
    with pytest.raises(InvalidTransition, match=f"^job cannot move {current.value} -> {to.value}$"):
        check_transition(current, to)


def test_terminal_states_are_exactly_the_states_without_exits() -> None:
    without_exits = {s for s in JobState if not any((s, to) in ALLOWED for to in JobState)}

    assert (without_exits, {s for s in JobState if s.is_terminal}) == (set(TERMINAL_STATES), {S, F, C, E})


def test_invalid_transition_is_a_conflict() -> None:
    with pytest.raises(InvalidTransition) as raised:
        check_transition(S, R)

    assert (raised.value.code, raised.value.message) == ("conflict", "job cannot move succeeded -> running")
