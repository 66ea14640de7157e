"""The run state machine: the loop's order, and terminal states stay terminal."""

from __future__ import annotations

import pytest

from codefactory.domain import RunState, may_transition

HAPPY_PATH = [
    RunState.RECEIVED,
    RunState.AUTHORIZED,
    RunState.PROVISIONED,
    RunState.CONTEXT_READY,
    RunState.PROPOSING,
    RunState.VERIFYING,
    RunState.PROPOSING,
    RunState.VERIFYING,
    RunState.VERIFIED,
    RunState.PACKAGED,
    RunState.IN_REVIEW,
    RunState.APPROVED,
    RunState.HANDED_OFF,
]


def test_the_happy_path_is_allowed_step_by_step() -> None:
    for current, target in zip(HAPPY_PATH, HAPPY_PATH[1:], strict=False):
        assert may_transition(current, target), (current, target)


@pytest.mark.parametrize("state", [s for s in RunState if not s.is_terminal])
def test_every_open_state_may_fail(state: RunState) -> None:
    assert may_transition(state, RunState.FAILED)


@pytest.mark.parametrize("state", [s for s in RunState if s.is_terminal])
def test_terminal_states_never_move(state: RunState) -> None:
    assert not any(may_transition(state, target) for target in RunState)


def test_no_skipping_verification_or_review() -> None:
    assert not may_transition(RunState.PROPOSING, RunState.PACKAGED)
    assert not may_transition(RunState.VERIFYING, RunState.PACKAGED)
    assert not may_transition(RunState.PACKAGED, RunState.APPROVED)
    assert not may_transition(RunState.IN_REVIEW, RunState.HANDED_OFF)
    assert not may_transition(RunState.RECEIVED, RunState.PROVISIONED)
