"""The feedback-loop port: a check judges the workspace after a change."""

from __future__ import annotations

from typing import Protocol

from codefactory.domain import Change, CheckResult
from codefactory.sandbox.port import Workspace


class Check(Protocol):
    """One gate: lint, tests, SCA, ...; runs inside the sandbox with no network."""

    name: str

    def run(self, workspace: Workspace, change: Change) -> CheckResult:
        """Judge the change; a check that could not run returns a failed result."""
        ...
