"""The engine port: an engine changes a workspace to fulfil a task."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from codefactory.domain import CheckResult, Proposal, Task
from codefactory.sandbox.port import Workspace


class Engine(Protocol):
    """A coding engine: an LLM agent, an external CLI, or a deterministic recipe."""

    name: str
    version: str

    def propose(
        self, task: Task, workspace: Workspace, feedback: Sequence[CheckResult]
    ) -> Proposal:
        """Edit the workspace; `feedback` holds the failed checks of earlier rounds."""
        ...
