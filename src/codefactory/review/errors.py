"""Review errors.

ReviewError
 ├── ForgeError              a git command in the forge failed (carries git's stderr)
 │    ├── EmptyChange        the change holds no file, or leaves the base tree unchanged
 │    └── BranchExists       the review branch already points at a different commit
 └── SegregationViolation    the reviewer may not approve this run (NIST SP 800-53 AC-5)
      ├── ReviewerMissing    no reviewer was named
      └── SelfApprovalRefused  the reviewer is the sponsor, the agent or the requester
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


class SelfApprovalRefused(SegregationViolation):
    """The reviewer holds another role in the run (sponsor, agent or requester)."""

    def __init__(self, reviewer: str, role: str, run_id: str = "") -> None:
        run = f"run {run_id}" if run_id else "this run"
        super().__init__(
            f"segregation of duties: {reviewer} is the {role} of {run} "
            "and cannot approve their own change"
        )
        self.reviewer = reviewer
        self.role = role
        self.run_id = run_id
