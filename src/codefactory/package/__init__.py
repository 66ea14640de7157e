"""The change package: patch, evidence, risk, rollback plan and CAB record for one run."""

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
