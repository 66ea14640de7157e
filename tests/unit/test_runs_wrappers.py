"""The loop's port wrappers without a store: the rounds budget around the engine, and the
agent's engine allow-list in front of each round's session (runs/rounds_budget.py,
runs/delegated.py). The delegation token itself, on a real store:
tests/integration/test_runs_wrappers_delegation.py."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import pytest

from codefactory.domain import (
    ChangeKind,
    CheckResult,
    Finding,
    Proposal,
    Run,
    RunState,
    Severity,
    Task,
)
from codefactory.engines.session import EngineSession
from codefactory.identity.agents import AgentIdentity, AgentStatus, StaticAgentDirectory
from codefactory.identity.errors import AgentUnavailable
from codefactory.runs.delegated import DelegatedSessions
from codefactory.runs.errors import RunFailed
from codefactory.runs.loop import RunFailed as LoopRunFailed
from codefactory.runs.rounds_budget import BudgetedEngine, rounds_cap
from codefactory.sandbox.port import Workspace

TASK = Task(kind=ChangeKind.FIX_LINT, title="fix lint", body="")
WORKSPACE = cast(Workspace, object())  # handed through untouched; no engine here reads it
AGENT = "agent:recipes"


class CountingEngine:
    """An engine that changes nothing and remembers what each proposal was given."""

    name = "recipe:counting"
    version = "7"

    def __init__(self) -> None:
        self.calls: list[tuple[Task, Workspace, list[CheckResult], EngineSession | None]] = []

    def propose(
        self,
        task: Task,
        workspace: Workspace,
        feedback: Sequence[CheckResult],
        session: EngineSession | None = None,
    ) -> Proposal:
        self.calls.append((task, workspace, list(feedback), session))
        return Proposal(engine=self.name, engine_version=self.version, rationale="nothing")


class RecordingSessions:
    """An `EngineSessions` that opens recipe sessions and remembers each opening."""

    def __init__(self) -> None:
        self.opened: list[tuple[str, str, int]] = []

    def open(self, run: Run, engine: str, *, round_number: int) -> EngineSession:
        self.opened.append((run.id, engine, round_number))
        return EngineSession(run_id=run.id, round=round_number)

    def model_requests(self, run: Run) -> int:
        return 3

    def close(self, run: Run) -> None:
        return None


def failed_lint() -> CheckResult:
    finding = Finding(check="lint", rule="F401", message="unused", severity=Severity.LOW)
    return CheckResult(check="lint", passed=False, findings=(finding,))


def a_run(agent: str = AGENT) -> Run:
    return Run(
        id="run-1",
        trigger_id="1",
        kind=ChangeKind.FIX_LINT,
        repository="local:/srv/sample-service",
        sponsor="priya.shah",
        agent_id=agent,
        state=RunState.PROPOSING,
        reason="",
        base_commit="",
        head_commit="",
        branch="",
        package_dir="",
        created_at=datetime.now(UTC),
    )


def directory(
    *, engines: tuple[str, ...] = ("recipe:*",), status: AgentStatus = AgentStatus.ACTIVE
) -> StaticAgentDirectory:
    agent = AgentIdentity(
        id=AGENT, display_name="Recipes", issuer="codefactory:test", owner="dana",
        engines=engines, status=status,
    )  # fmt: skip
    return StaticAgentDirectory([agent])


def test_the_rounds_cap_is_the_factorys_lowered_by_the_registrys() -> None:
    assert rounds_cap(3, None) == 3
    assert rounds_cap(3, 0) == 3  # no registry cap: the factory's alone
    assert rounds_cap(3, 2) == 2
    assert rounds_cap(3, 5) == 3  # the registry lowers the cap, never raises it


def test_the_budget_hands_each_round_to_the_engine_and_refuses_the_one_past_it(
    tmp_path: Path,
) -> None:
    inner = CountingEngine()
    engine = BudgetedEngine(inner, max_rounds=2, evidence=tmp_path / "run-1")
    assert (engine.name, engine.version) == ("recipe:counting", "7")
    session = EngineSession(run_id="run-1")
    assert engine.next_round([]) == 1
    proposal = engine.propose(TASK, WORKSPACE, [], session)
    assert proposal.rationale == "nothing"
    assert inner.calls == [(TASK, WORKSPACE, [], session)]
    feedback = [failed_lint()]
    assert engine.next_round(feedback) == 2
    engine.propose(TASK, WORKSPACE, feedback)
    assert inner.calls[-1] == (TASK, WORKSPACE, feedback, None)
    message = (
        f"checks still failing after 2 rounds: lint (1 finding) (evidence in {tmp_path / 'run-1'})"
    )
    with pytest.raises(RunFailed) as asked:
        engine.next_round(feedback)
    assert str(asked.value) == message
    with pytest.raises(LoopRunFailed) as proposed:  # the loop's RunFailed: the same class
        engine.propose(TASK, WORKSPACE, feedback)
    assert str(proposed.value) == message
    assert len(inner.calls) == 2 and engine.proposals == 2


def test_a_budget_of_one_round_refuses_the_second(tmp_path: Path) -> None:
    inner = CountingEngine()
    engine = BudgetedEngine(inner, max_rounds=1, evidence=tmp_path)
    engine.propose(TASK, WORKSPACE, [])
    with pytest.raises(RunFailed, match="after 1 rounds: no results"):
        engine.propose(TASK, WORKSPACE, [])
    assert len(inner.calls) == 1


def test_a_session_opens_for_an_engine_the_agent_may_use() -> None:
    inner = RecordingSessions()
    sessions = DelegatedSessions(inner, agents=directory(), delegation=None)
    session = sessions.open(a_run(), "recipe:lint-fix", round_number=2)
    assert session is not None and (session.run_id, session.round) == ("run-1", 2)
    assert inner.opened == [("run-1", "recipe:lint-fix", 2)]
    assert sessions.model_requests(a_run()) == 3


def test_no_session_opens_for_an_engine_the_agent_may_not_use() -> None:
    inner = RecordingSessions()
    sessions = DelegatedSessions(inner, agents=directory(engines=("llm:*",)), delegation=None)
    with pytest.raises(RunFailed) as refused:
        sessions.open(a_run(), "recipe:lint-fix", round_number=1)
    assert str(refused.value) == f"agent {AGENT} may not use the engine recipe:lint-fix"
    assert inner.opened == []


def test_no_session_opens_for_a_suspended_agent() -> None:
    inner = RecordingSessions()
    agents = directory(status=AgentStatus.SUSPENDED)
    sessions = DelegatedSessions(inner, agents=agents, delegation=None)
    with pytest.raises(AgentUnavailable):
        sessions.open(a_run(), "recipe:lint-fix", round_number=1)
    assert inner.opened == []


def test_without_sessions_a_round_runs_with_none_once_the_agent_is_allowed() -> None:
    sessions = DelegatedSessions(None, agents=directory(), delegation=None)
    assert sessions.open(a_run(), "recipe:lint-fix", round_number=1) is None
    assert sessions.model_requests(a_run()) == 0
    refusing = DelegatedSessions(None, agents=directory(engines=()), delegation=None)
    with pytest.raises(RunFailed, match="may not use the engine recipe:lint-fix"):
        refusing.open(a_run(), "recipe:lint-fix", round_number=1)
