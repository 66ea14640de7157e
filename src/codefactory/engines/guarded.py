"""Guards asked before every engine round: the organisation-wide halt, the daily cost caps.

`GuardedEngine(inner, guards)` wraps any `Engine` (a recipe, the in-harness agent, an agent
CLI): before it delegates `propose`, each guard is asked about the run and the round; the
first refusal raises `RoundRefused` with the guard's reason, and the engine never starts.
A halt raised while the round runs is the sandbox's and the gateway's to stop
(`sandbox/halting.py`, the gateway's refusal of model calls).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from codefactory.domain import CheckResult, Proposal, Task
from codefactory.engines.port import Engine
from codefactory.engines.session import EngineSession
from codefactory.sandbox.errors import SandboxError
from codefactory.sandbox.port import Workspace

RoundGuard = Callable[[str, str, int], str | None]
"""(run id, engine name, round number) → why the round may not start, or None."""


class RoundRefused(SandboxError):
    """A guard refused the engine round before the engine started: the run ends `failed`
    with exactly this message. (A sandbox-level error, not an `EngineError`: the loop reads an
    engine's error after a failed round as "the engine could not do better", which a halt or
    a cost cap is not.)"""


class GuardedEngine:
    """An engine whose every round is first cleared by its guards."""

    def __init__(self, inner: Engine, guards: Sequence[RoundGuard]) -> None:
        self.inner = inner
        self.guards = tuple(guards)

    @property
    def name(self) -> str:
        return self.inner.name

    @name.setter
    def name(self, value: str) -> None:
        self.inner.name = value

    @property
    def version(self) -> str:
        return self.inner.version  # a lazy engine knows its version once built

    @version.setter
    def version(self, value: str) -> None:
        self.inner.version = value

    def propose(
        self,
        task: Task,
        workspace: Workspace,
        feedback: Sequence[CheckResult],
        session: EngineSession | None = None,
    ) -> Proposal:
        """`Engine.propose`, after every guard cleared the round; `RoundRefused` otherwise."""
        round_number = session.round if session is not None else len(feedback) + 1
        for guard in self.guards:
            refusal = guard(workspace.run_id, self.inner.name, round_number)
            if refusal is not None:
                raise RoundRefused(refusal)
        return self.inner.propose(task, workspace, feedback, session)


def guarded(engines: Mapping[str, Engine], guards: Sequence[RoundGuard]) -> dict[str, Engine]:
    """Every engine of `engines` wrapped in the same guards, by the same names."""
    return {name: GuardedEngine(engine, guards) for name, engine in engines.items()}
