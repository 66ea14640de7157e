"""Delegation checks as wrappers around the ports the loop acts through.

Each act the agent takes for a run is checked against the run's delegation token
(`Delegation.check`, which audits every check and raises `DelegationRefused`) before the
wrapped port is called:

    engine:propose  `DelegatedSessions.open`: the agent may use the engine, and the token
                    allows the act, before the round's session (its model credential at the
                    gateway) is opened and the engine called
    package:sign    `DelegatedPackager.build`: before the package (signed provenance and
                    attestation) is written

The engine port itself is not where `engine:propose` is checked: the loop opens a round's
session, which grants the run's model credential, before it calls the engine, and no
credential is granted for an act the token does not allow. `forge:commit` has no wrapper:
the loop checks it before it writes the `commit-requested` event the commit message cites,
which comes before `Forge.open_change`. The loop builds these wrappers
for each run around the ports it was handed (`RunLoop.sessions`, `RunLoop.packager`), which
stay unwrapped for callers that act for no run (`runs replay`, tests).
"""

from __future__ import annotations

from collections.abc import Sequence

from codefactory.domain import Change, ChangeKind, ChangePackage, CheckResult, Run
from codefactory.engines.session import EngineSession
from codefactory.identity.port import AgentDirectory, Delegation
from codefactory.package.port import PackageBuilder, PackageContents
from codefactory.runs.engine_ports import EngineSessions
from codefactory.runs.errors import RunFailed


class DelegatedSessions:
    """Wraps the loop's engine sessions (None: engines run without one): each round's
    session opens only when the run's agent may use the engine and its token allows
    `engine:propose`."""

    def __init__(
        self,
        inner: EngineSessions | None,
        *,
        agents: AgentDirectory,
        delegation: Delegation | None,
    ) -> None:
        self.inner = inner
        self.agents = agents
        self.delegation = delegation

    def open(self, run: Run, engine: str, *, round_number: int) -> EngineSession | None:
        """The round's session from the inner port (None without one). `RunFailed` when the
        agent may not use `engine`, `AgentUnavailable` when it is no longer active,
        `DelegationRefused` when the token does not allow `engine:propose`; the inner port is
        not called then."""
        if engine and not self.agents.require_active(run.agent_id).may_use(engine):
            raise RunFailed(f"agent {run.agent_id} may not use the engine {engine}")
        if self.delegation is not None:
            self.delegation.check(run, action="engine:propose")
        if self.inner is None:
            return None
        return self.inner.open(run, engine, round_number=round_number)

    def model_requests(self, run: Run) -> int:
        """The inner port's count of the run's model calls (0 without one)."""
        return self.inner.model_requests(run) if self.inner is not None else 0


class DelegatedPackager:
    """Wraps the package builder: a run's package is built only when its token allows
    `package:sign`, checked once per run (a rebuild after a stopped worker's folder was set
    aside is the same act)."""

    def __init__(self, inner: PackageBuilder, *, delegation: Delegation) -> None:
        self.inner = inner
        self.delegation = delegation
        self._checked: set[str] = set()

    def build(self, contents: PackageContents) -> ChangePackage:
        """The inner builder's package; `DelegationRefused` (the inner builder not called)
        when the token of `contents.run` does not allow `package:sign`."""
        if contents.run.id not in self._checked:
            self.delegation.check(contents.run, action="package:sign")
            self._checked.add(contents.run.id)
        return self.inner.build(contents)

    def risk_level(self, change: Change, kind: ChangeKind, results: Sequence[CheckResult]) -> str:
        """The inner builder's risk level (no act: nothing is checked)."""
        return self.inner.risk_level(change, kind, results)
