"""The change package: patch, evidence, risk, rollback plan and CAB record for one run."""

from __future__ import annotations

from typing import TYPE_CHECKING

from codefactory.lazy import lazy_exports

if TYPE_CHECKING:
    from codefactory.package.errors import (
        DuplicateEvidence,
        PackageError,
        PackageExists,
        UnsafeName,
    )
    from codefactory.package.port import PackageBuilder, PackageContents
    from codefactory.package.risk import RiskAssessment, assess_risk

__all__ = [
    "DuplicateEvidence",
    "PackageBuilder",
    "PackageContents",
    "PackageError",
    "PackageExists",
    "RiskAssessment",
    "UnsafeName",
    "assess_risk",
]

__getattr__ = lazy_exports(
    __name__,
    globals(),
    {
        "DuplicateEvidence": "codefactory.package.errors",
        "PackageError": "codefactory.package.errors",
        "PackageExists": "codefactory.package.errors",
        "UnsafeName": "codefactory.package.errors",
        "PackageBuilder": "codefactory.package.port",
        "PackageContents": "codefactory.package.port",
        "RiskAssessment": "codefactory.package.risk",
        "assess_risk": "codefactory.package.risk",
    },
)
