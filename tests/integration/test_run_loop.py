"""The loop on the real embedded defaults (SQLite, bubblewrap, Cedar, the local forge).

Engines that misbehave are real `Engine` implementations written here: the loop must turn
each failure into a `failed` run with its reason, an audit event and no leftovers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlalchemy import text

from codefactory.config import Settings
from codefactory.domain import CheckResult, Proposal, RunState, Task, UnknownEvent
from codefactory.factory import Factory, build_factory
from codefactory.runs.tickets import accept_ticket
from codefactory.sandbox.port import Workspace
from codefactory.store.errors import InvalidTransition
from tests.acceptance.conftest import TEMPLATE
from tests.conftest import data_dir_sharing_cache, sample_service

pytestmark = pytest.mark.usefixtures("bwrap_available")


@pytest.fixture
def factory(tmp_path: Path, uv_cache: Path) -> Factory:
    data_dir = data_dir_sharing_cache(tmp_path / "data", uv_cache)
    return build_factory(Settings(data_dir=data_dir))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return sample_service(tmp_path / "sample-service")


def lint_ticket() -> bytes:
    return (TEMPLATE / "tickets" / "SVC-102.json").read_bytes()


class RaisingEngine:
    name = "test:raising"
    version = "0"

    def propose(
        self,
        task: Task,
        workspace: Workspace,
        feedback: Sequence[CheckResult],
        session: object = None,
    ) -> Proposal:
        raise RuntimeError("model endpoint returned garbage")


class BreakingEngine:
    """Writes a change that fails the repository's own tests, every round."""

    name = "test:breaking"
    version = "0"

    def __init__(self) -> None:
        self.calls = 0

    def propose(
        self,
        task: Task,
        workspace: Workspace,
        feedback: Sequence[CheckResult],
        session: object = None,
    ) -> Proposal:
        self.calls += 1
        workspace.write_file("service/hostnames.py", b"def to_ascii(h):\n    return h\n")
        return Proposal(engine=self.name, engine_version=self.version, rationale="break it")


def audit_names(factory: Factory, run_id: str) -> list[str]:
    return [record.name for record in factory.audit.events(run_id)]


def test_an_engine_that_raises_fails_the_run_with_the_cause(factory: Factory, repo: Path) -> None:
    factory.loop.engines = {"recipe:lint-fix": RaisingEngine()}
    run = accept_ticket(factory, payload=lint_ticket(), repo=repo)
    assert run.state is RunState.FAILED
    assert run.reason == "internal error: RuntimeError: model endpoint returned garbage"
    assert audit_names(factory, run.id)[-1] == "run-state-changed"
    assert factory.audit.events(run.id)[-1].data["state"] == "failed"
    assert not any((factory.settings.workspaces_dir).iterdir())
    assert factory.audit.verify().ok


def test_a_setup_that_fails_fails_the_run_with_its_log_in_the_evidence(
    factory: Factory, tmp_path: Path
) -> None:
    # no release of this name exists on the index: the resolver must say so, not hang
    broken = sample_service(
        tmp_path / "broken", **{"requirements.txt": "codefactory-no-such-package-x7==1.0\n"}
    )
    run = accept_ticket(factory, payload=lint_ticket(), repo=broken)
    assert run.state is RunState.FAILED
    assert "setup" in run.reason and "codefactory-no-such-package-x7" in run.reason
    log = (factory.settings.data_dir / "evidence" / run.id / "setup.log").read_text()
    assert "codefactory-no-such-package-x7" in log
    assert not any((factory.settings.workspaces_dir).iterdir())


def test_failing_checks_go_back_to_the_engine_then_the_run_fails_with_evidence(
    factory: Factory, repo: Path
) -> None:
    engine = BreakingEngine()
    factory.loop.engines = {"recipe:lint-fix": engine}
    run = accept_ticket(factory, payload=lint_ticket(), repo=repo)
    assert run.state is RunState.FAILED
    assert engine.calls == factory.settings.runs.max_rounds == 2
    assert "checks still failing after 2 rounds" in run.reason
    states = [s.state.value for s in run.history]
    assert states.count("proposing") == 2 and states.count("verifying") == 2
    findings = factory.store.findings(run.id)
    assert {round_number for round_number, _ in findings} == {1, 2}
    # the broken module breaks collection: pytest runs nothing, so the tests could not run
    assert any(f.rule in ("test-failed", "tests-could-not-run") for _, f in findings)
    for round_number in (1, 2):
        evidence = factory.settings.data_dir / "evidence" / run.id / f"round-{round_number}"
        assert (evidence / "junit.xml").is_file()
        json.loads((evidence / "lint.sarif").read_text())
    assert factory.store.get_package(run.id) is None


def test_the_rounds_cap_is_configurable(tmp_path: Path, uv_cache: Path, repo: Path) -> None:
    data_dir = data_dir_sharing_cache(tmp_path / "one-round", uv_cache)
    settings = Settings(data_dir=data_dir)
    settings.runs.max_rounds = 1
    factory = build_factory(settings)
    engine = BreakingEngine()
    factory.loop.engines = {"recipe:lint-fix": engine}
    run = accept_ticket(factory, payload=lint_ticket(), repo=repo)
    assert run.state is RunState.FAILED and engine.calls == 1


def test_a_lint_run_reaches_review_with_every_state_audited(factory: Factory, repo: Path) -> None:
    run = accept_ticket(factory, payload=lint_ticket(), repo=repo)
    assert run.state is RunState.IN_REVIEW, run.reason
    changes = [
        r.data["state"] for r in factory.audit.events(run.id) if r.name == "run-state-changed"
    ]
    assert changes == [s.state.value for s in run.history][1:]
    names = set(audit_names(factory, run.id))
    assert {
        "run-created",
        "policy-decided",
        "context-gathered",
        "engine-proposed",
        "check-completed",
        "package-built",
    } <= names


def test_a_state_change_and_its_audit_event_commit_together(factory: Factory, repo: Path) -> None:
    run = accept_ticket(factory, payload=lint_ticket(), repo=repo)
    events_before = len(factory.audit.events())
    with pytest.raises(InvalidTransition):
        with factory.store.atomic() as tx:
            tx.append(UnknownEvent(kind="review-recorded", actor="user:x", run_id=run.id))
            tx.transition(run.id, RunState.HANDED_OFF)
    assert len(factory.audit.events()) == events_before
    assert factory.store.require_run(run.id).state is RunState.IN_REVIEW
    with factory.store.engine.connect() as connection:
        count = connection.execute(
            text("SELECT count(*) FROM run_states WHERE run_id = :r"), {"r": run.id}
        ).scalar()
    assert count == len(run.history)
