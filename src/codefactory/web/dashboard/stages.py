"""The verdicts a run waits for, by its state: review (`in_review`), then the regulated
track's QA (`in_qa`) and UAT (`in_uat`) sign-offs (docs/review.md). States are matched by
their value."""

from __future__ import annotations

from dataclasses import dataclass

from codefactory.identity.directory import Role
from codefactory.identity.ssh_signatures import REVIEW_NAMESPACE
from codefactory.identity.statements import SIGN_OFF_NAMESPACE


@dataclass(frozen=True, kw_only=True)
class Stage:
    """What a run in one state waits for: who gives it and how it is signed."""

    state: str
    task: str
    """What the person is asked for: `review`, `QA sign-off`, `UAT sign-off`."""
    role: Role
    verdicts: tuple[str, str]
    """(the verdict that moves the run on, the one that rejects it)."""
    namespace: str
    """The `ssh-keygen -Y sign -n` namespace of its statements."""
    sign_off: str = ""
    """The sign-off stage (`qa`, `uat`) of `ReviewDesk.sign_off`; "" for a review."""
    note: str = "comment"
    """What the free text of the statement is called (`comment`, `reason`)."""


REVIEW = Stage(
    state="in_review", task="review", role=Role.REVIEWER, verdicts=("approve", "reject"),
    namespace=REVIEW_NAMESPACE,
)  # fmt: skip
STAGES = {
    stage.state: stage
    for stage in (
        REVIEW,
        Stage(
            state="in_qa", task="QA sign-off", role=Role.QA, verdicts=("accept", "reject"),
            namespace=SIGN_OFF_NAMESPACE, sign_off="qa", note="reason",
        ),
        Stage(
            state="in_uat", task="UAT sign-off", role=Role.UAT, verdicts=("accept", "reject"),
            namespace=SIGN_OFF_NAMESPACE, sign_off="uat", note="reason",
        ),
    )
}  # fmt: skip
"""State value → the stage a run in it waits for."""


def stage_of(state: str) -> Stage | None:
    """The stage a run in `state` (its value) waits for, or None."""
    return STAGES.get(state)
