"""Segregation of duties (NIST SP 800-53 AC-5): who may not approve a run's change."""

from __future__ import annotations

import pytest

from codefactory.review import (
    NonHumanReviewer,
    ReviewerMissing,
    ReviewError,
    SegregationViolation,
    SelfApprovalRefused,
    check_reviewer,
)

ROLES = {"sponsor": "alice", "agent_id": "agent:dependency-bump", "trigger_actor": "bob"}


def test_an_independent_reviewer_passes() -> None:
    check_reviewer(reviewer="carol", **ROLES)


@pytest.mark.parametrize(
    ("reviewer", "role"),
    [
        ("alice", "sponsor"),
        ("  Alice ", "sponsor"),
        ("AGENT:Dependency-Bump", "agent"),
        ("bob", "requester"),
        ("BOB\n", "requester"),
    ],
)
def test_a_party_to_the_change_cannot_approve(reviewer: str, role: str) -> None:
    with pytest.raises(SelfApprovalRefused) as raised:
        check_reviewer(reviewer=reviewer, **ROLES)
    assert raised.value.role == role
    assert raised.value.reviewer == reviewer.strip()
    assert isinstance(raised.value, SegregationViolation | ReviewError)


def test_the_message_names_the_run() -> None:
    with pytest.raises(SelfApprovalRefused) as raised:
        check_reviewer(reviewer="alice", run_id="r-42", **ROLES)
    assert str(raised.value) == (
        "segregation of duties: alice is the sponsor of run r-42 "
        "and cannot approve their own change"
    )


@pytest.mark.parametrize("reviewer", ["", "   ", "\t"])
def test_a_reviewer_must_be_named(reviewer: str) -> None:
    with pytest.raises(ReviewerMissing):
        check_reviewer(reviewer=reviewer, **ROLES)


def test_an_empty_role_matches_nobody() -> None:
    check_reviewer(reviewer="carol", sponsor="alice", agent_id="agent:x", trigger_actor="")


@pytest.mark.parametrize("reviewer", ["dave", "user:dave", "Dave", "ｄave", "USER:DAVE"])
def test_the_person_who_caused_the_trigger_cannot_approve(reviewer: str) -> None:
    with pytest.raises(SelfApprovalRefused) as raised:
        check_reviewer(reviewer=reviewer, caused_by="user:dave", **ROLES)
    assert raised.value.role == "person who caused the trigger"


@pytest.mark.parametrize(
    "reviewer", ["alice\u200b", "car\u202eol", "agent:some-other-bot", "service:deployer"]
)
def test_non_humans_and_hidden_characters_never_approve(reviewer: str) -> None:
    with pytest.raises(NonHumanReviewer):
        check_reviewer(reviewer=reviewer, **ROLES)


def test_a_party_whose_recorded_name_hides_a_character_is_still_that_party() -> None:
    with pytest.raises(SelfApprovalRefused):
        check_reviewer(
            reviewer="alice", sponsor="al\u200bice", agent_id="agent:x", trigger_actor=""
        )
