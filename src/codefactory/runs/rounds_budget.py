"""The rounds budget: an engine gets at most `max_rounds` proposals in one run, whichever
workers drive it (a run taken over keeps counting from the rounds it started).

`BudgetedEngine` wraps the run's engine for one run. The loop asks it for the next round
before it moves the run into `proposing` (so a spent budget never opens a round), and
`propose` refuses a proposal past the budget itself, so nothing reaches the engine once the
budget is spent.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from codefactory.domain import CheckResult, Proposal, Task
from codefactory.engines.port import Engine
from codefactory.engines.session import EngineSession
from codefactory.runs.errors import RunFailed
from codefactory.runs.evidence import failing_summary
from codefactory.sandbox.port import Workspace


def rounds_cap(factory_cap: int, registry_cap: int | None) -> int:
    """The rounds a run's engine gets: the factory's cap (`runs.max_rounds`), lowered by the
    engine registry's `max_rounds` for the engine (None or 0: the factory's alone)."""
    return min(factory_cap, registry_cap) if registry_cap else factory_cap


class BudgetedEngine:
    """Wraps one run's engine; counts its proposals and refuses one past `max_rounds`."""

    def __init__(self, inner: Engine, *, max_rounds: int, evidence: Path, spent: int = 0) -> None:
        """`evidence` is the run's evidence folder, named in the refusal; `spent` the rounds
        the run already started before this worker took it (a worker that stopped mid-run:
        the budget is the run's, not each worker's, and round numbers go on from there)."""
        self.inner = inner
        self.name = inner.name
        self.version = inner.version
        self.max_rounds = max_rounds
        self.evidence = evidence
        self.proposals = spent
        """Proposals asked of the engine in this run so far (each counted before it is made;
        a round a stopped worker started counts, as it may have reached the model)."""

    def next_round(self, feedback: Sequence[CheckResult]) -> int:
        """The number (1-based) of the round to run next; `RunFailed` naming the checks in
        `feedback` (the last round's failures) when the budget is spent."""
        if self.proposals >= self.max_rounds:
            raise RunFailed(
                f"checks still failing after {self.max_rounds} rounds: "
                f"{failing_summary(feedback)} (evidence in {self.evidence})"
            )
        return self.proposals + 1

    def propose(
        self,
        task: Task,
        workspace: Workspace,
        feedback: Sequence[CheckResult],
        session: EngineSession | None = None,
    ) -> Proposal:
        """The inner engine's proposal, counted; `RunFailed` past the budget (the inner
        engine is not called)."""
        self.next_round(feedback)
        self.proposals += 1
        return self.inner.propose(task, workspace, feedback, session)
