"""Review errors.

ReviewError
 ├── ForgeError              a git command in the forge failed (carries git's stderr)
 │    ├── EmptyChange        the change holds no file, or leaves the base tree unchanged
 │    └── BranchExists       the review branch already points at a different commit
 ├── SegregationViolation    the reviewer may not approve this run (NIST SP 800-53 AC-5)
 │    ├── ReviewerMissing    no reviewer was named
 │    ├── NonHumanReviewer   the reviewer is not a person (`agent:`, refused characters)
 │    └── SelfApprovalRefused  the reviewer is the sponsor, the agent, the requester or the
 │                           person who caused the trigger
 └── VerdictRefused          the signed verdict does not count (names why; audited)
      └── FactsRefused       what the run's rows, branch or package say is not what was
                             signed: the commit, the package, the sponsor, who caused the
                             trigger (names which)
"""

from __future__ import annotations


class ReviewError(Exception):
    """Base class for every review failure."""


class ForgeError(ReviewError):
    """The forge could not record the change; the message holds git's own words."""


class EmptyChange(ForgeError):
    """There is nothing to put on a review branch."""

    def __init__(self, branch: str) -> None:
        super().__init__(f"the change for {branch} is empty: nothing to review")
        self.branch = branch


class BranchExists(ForgeError):
    """The review branch exists already and holds another commit; it is never overwritten."""

    def __init__(self, branch: str, existing: str) -> None:
        super().__init__(f"branch {branch} already exists at {existing}; refusing to move it")
        self.branch = branch
        self.existing = existing


class SegregationViolation(ReviewError):
    """The named reviewer cannot approve this change."""


class ReviewerMissing(SegregationViolation):
    """An approval must name the human who gives it."""

    def __init__(self) -> None:
        super().__init__("segregation of duties: an approval must name its reviewer")


class NonHumanReviewer(SegregationViolation):
    """Non-humans never approve; a name with hidden characters is no person either."""

    def __init__(self, reviewer: str, run_id: str, reason: str) -> None:
        run = f"run {run_id}" if run_id else "this run"
        shown = reviewer.encode("unicode_escape").decode("ascii")[:120]
        super().__init__(f"segregation of duties: {shown!r} may not review {run}: {reason}")
        self.reviewer = reviewer
        self.run_id = run_id


class VerdictRefused(ReviewError):
    """A signed verdict that does not count: an unknown key, another person's key, another
    run's statement, a stale or replayed one, a reviewer without the role."""

    def __init__(self, run_id: str, reason: str) -> None:
        super().__init__(f"verdict on run {run_id} refused: {reason}")
        self.run_id = run_id
        self.reason = reason


class SelfApprovalRefused(SegregationViolation):
    """The reviewer holds another role in the run (sponsor, agent, requester, or the person
    who caused the trigger)."""

    def __init__(self, reviewer: str, role: str, run_id: str = "") -> None:
        run = f"run {run_id}" if run_id else "this run"
        super().__init__(
            f"segregation of duties: {reviewer} is the {role} of {run} "
            "and cannot approve their own change"
        )
        self.reviewer = reviewer
        self.role = role
        self.run_id = run_id


class FactsRefused(VerdictRefused):
    """The run cannot be reviewed: a fact an approval binds to (the agent-signed commit, the
    issuer-attested package, the sponsor and the person who caused the trigger as the
    delegation token names them) does not verify, or the factory's rows disagree with it."""
