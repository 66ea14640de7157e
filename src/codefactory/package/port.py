"""The change-package port: everything a reviewer and an examiner read about one run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from codefactory.domain import (
    Change,
    ChangeKind,
    ChangePackage,
    CheckResult,
    Proposal,
    Run,
    TriggerEvent,
)


@dataclass(frozen=True, kw_only=True)
class PackageContents:
    """What a verified run hands to the package builder."""

    run: Run
    trigger: TriggerEvent
    proposal: Proposal
    results: tuple[CheckResult, ...]
    """The check results of the last round, the one that verified the change."""
    rounds: int
    patch: str
    """The change as `git diff --binary` from the forge (non-UTF-8 bytes as surrogates)."""
    commit: str
    branch: str
    forge_repository: str
    """Path of the bare repository that holds `branch`."""
    change: Change
    sources: tuple[dict[str, Any], ...] = ()
    """The context the engine was given (`Task.sources`): cited in the design rationale."""


class PackageBuilder(Protocol):
    """Turns a verified run into a reviewable, immutable change package."""

    def build(self, contents: PackageContents) -> ChangePackage:
        """Write the package; refuses to overwrite an existing one."""
        ...

    def risk_level(self, change: Change, kind: ChangeKind, results: Sequence[CheckResult]) -> str:
        """The risk level (`low`, `moderate` or `high`) the package of this change would
        carry, before a patch exists: what policy's scope check reads as `risk`."""
        ...
