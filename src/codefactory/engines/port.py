"""The engine port: an engine changes a workspace to fulfil a task."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from codefactory.domain import CheckResult, Proposal, Task
from codefactory.engines.session import EngineSession
from codefactory.sandbox.port import Workspace


class Engine(Protocol):
    """A coding engine: an LLM agent, an external CLI, or a deterministic recipe."""

    name: str
    version: str

    def propose(
        self,
        task: Task,
        workspace: Workspace,
        feedback: Sequence[CheckResult],
        session: EngineSession | None = None,
    ) -> Proposal:
        """Edit the workspace; `feedback` holds the failed checks of earlier rounds;
        `session` says how to reach the model and which tool calls policy allows (None:
        a recipe's call, or a test's, with no model and no gate)."""
        ...
