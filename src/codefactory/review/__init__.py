"""Human review: the forge that holds a run's branch and the segregation-of-duties gate."""

from codefactory.review.errors import (
    BranchExists,
    EmptyChange,
    ForgeError,
    ReviewerMissing,
    ReviewError,
    SegregationViolation,
    SelfApprovalRefused,
)
from codefactory.review.port import Forge
from codefactory.review.segregation import check_reviewer

__all__ = [
    "BranchExists",
    "EmptyChange",
    "Forge",
    "ForgeError",
    "ReviewError",
    "ReviewerMissing",
    "SegregationViolation",
    "SelfApprovalRefused",
    "check_reviewer",
]
