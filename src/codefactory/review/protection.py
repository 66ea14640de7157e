"""Would the forge let the agent's change merge without review? Branch protection, read
from the forge (`ForgeHost.protection`) and judged by `BranchProtection.gaps`.

A repository is named on the forge as `review/forges/naming.py` names it; by default every
repository bound in `triggers.repositories` is checked (its canonical id mapped to the
forge's name; ids with no name there, such as `local:` ones, are listed as skipped).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from codefactory.review.forges.errors import ForgeApiError
from codefactory.review.forges.naming import NotPublishable, forge_repository
from codefactory.review.port import ForgeHost

PROTECTED, GAPS, ERROR = "protected", "gaps", "error"


@dataclass(frozen=True, kw_only=True)
class ProtectionCheck:
    """One repository's branch: `outcome` `protected` (no gap), `gaps` (what lets a change
    merge without review, in words), or `error` (the forge's named error, `error_kind`
    such as `forge-not-found`)."""

    repository: str
    branch: str
    outcome: str
    gaps: tuple[str, ...] = ()
    error: str = ""
    error_kind: str = ""

    def audit_data(self, forge: str) -> dict[str, Any]:
        """The `forge-protection-checked` event's fields."""
        return {
            "forge": forge,
            "repository": self.repository,
            "branch": self.branch,
            "outcome": self.outcome,
            "gaps": list(self.gaps),
            "error": self.error,
            "error_kind": self.error_kind,
        }


@dataclass(frozen=True, kw_only=True)
class Skipped:
    """A bound repository with no name on the forge, and why."""

    repository: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class Targets:
    """The forge names to check and the bound ids that have none."""

    names: tuple[str, ...]
    skipped: tuple[Skipped, ...] = field(default=())


def bound_targets(canonical_ids: Iterable[str], forge: str) -> Targets:
    """The forge (`github`, `gitlab`, …) names of the canonical ids, each once, in order."""
    names: list[str] = []
    skipped: list[Skipped] = []
    for repository in sorted(set(canonical_ids)):
        try:
            name = forge_repository(repository, forge)
        except NotPublishable as err:
            skipped.append(Skipped(repository=repository, reason=err.reason))
            continue
        if name not in names:
            names.append(name)
    return Targets(names=tuple(names), skipped=tuple(skipped))


def check_protection(
    host: ForgeHost, repository: str, branch: str, *, status_context: str
) -> ProtectionCheck:
    """Ask the forge what it enforces on `branch` of `repository` (its forge name) and
    judge it; a `ForgeApiError` (401, 403, 404, 429, 5xx, …) is an `error` outcome."""
    try:
        rules = host.protection(repository, branch)
    except ForgeApiError as err:
        return ProtectionCheck(
            repository=repository,
            branch=branch,
            outcome=ERROR,
            error=str(err),
            error_kind=err.kind,
        )
    gaps = tuple(rules.gaps(status_context=status_context))
    return ProtectionCheck(
        repository=repository, branch=branch, outcome=GAPS if gaps else PROTECTED, gaps=gaps
    )
