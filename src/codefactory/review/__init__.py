"""Human review: the forge that holds a run's branch and the segregation-of-duties gate."""

from codefactory.review.errors import (
    BranchExists,
    EmptyChange,
    ForgeError,
    NonHumanReviewer,
    ReviewerMissing,
    ReviewError,
    SegregationViolation,
    SelfApprovalRefused,
    VerdictRefused,
)
from codefactory.review.port import Forge
from codefactory.review.segregation import check_reviewer

__all__ = [
    "BranchExists",
    "EmptyChange",
    "Forge",
    "ForgeError",
    "NonHumanReviewer",
    "ReviewError",
    "ReviewerMissing",
    "SegregationViolation",
    "SelfApprovalRefused",
    "VerdictRefused",
    "check_reviewer",
]
