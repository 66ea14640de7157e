"""Human review: the forge that holds a run's branch and the segregation-of-duties gate."""

from __future__ import annotations

from typing import TYPE_CHECKING

from codefactory.lazy import lazy_exports

if TYPE_CHECKING:
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

__getattr__ = lazy_exports(
    __name__,
    globals(),
    {
        "BranchExists": "codefactory.review.errors",
        "EmptyChange": "codefactory.review.errors",
        "ForgeError": "codefactory.review.errors",
        "NonHumanReviewer": "codefactory.review.errors",
        "ReviewerMissing": "codefactory.review.errors",
        "ReviewError": "codefactory.review.errors",
        "SegregationViolation": "codefactory.review.errors",
        "SelfApprovalRefused": "codefactory.review.errors",
        "VerdictRefused": "codefactory.review.errors",
        "Forge": "codefactory.review.port",
        "check_reviewer": "codefactory.review.segregation",
    },
)
