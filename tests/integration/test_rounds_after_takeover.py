"""The rounds budget is the run's, not each worker's: a run taken over mid-round keeps
counting from the rounds it started, and its round numbers go on from there.

Real loop, store, delegation tokens and bubblewrap sandboxes. A worker that stops mid-round is
an engine raising a BaseException (not an Exception: the loop does not end the run, which
stays `proposing` as a killed worker's would); `RunLoop.execute` again is what the sweeper
does on takeover (tests/integration/test_run_takeover.py kills real processes).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from codefactory.config import Settings
from codefactory.domain import CheckResult, Proposal, RunState, Task
from codefactory.factory import Factory, build_factory
from codefactory.runs.tickets import accept_ticket
from codefactory.sandbox.port import Workspace
from tests.acceptance.conftest import TEMPLATE
from tests.conftest import data_dir_sharing_cache, sample_service

pytestmark = pytest.mark.usefixtures("bwrap_available")
LINT_TICKET = (TEMPLATE / "tickets" / "SVC-102.json").read_bytes()


class WorkerKilled(BaseException):
    """Stands for SIGKILL: not an Exception, so the loop does not end the run."""


class FailingEngine:
    """Proposes a change the checks refuse, every round; its worker dies at call `kill_at`."""

    name = "recipe:lint-fix"  # an engine the default agent may use
    version = "0"

    def __init__(self, kill_at: int) -> None:
        self.calls = 0
        self.kill_at = kill_at

    def propose(
        self,
        task: Task,
        workspace: Workspace,
        feedback: Sequence[CheckResult],
        session: object = None,
    ) -> Proposal:
        self.calls += 1
        if self.calls == self.kill_at:
            raise WorkerKilled
        workspace.write_file("service/hostnames.py", b"def to_ascii(h):\n    return h\n")
        return Proposal(engine=self.name, engine_version=self.version, rationale="break it")


@pytest.fixture
def factory(tmp_path: Path, uv_cache: Path) -> Factory:
    data_dir = data_dir_sharing_cache(tmp_path / "data", uv_cache)
    return build_factory(Settings(data_dir=data_dir))


def test_a_run_taken_over_in_its_last_round_gets_no_fresh_budget(
    factory: Factory, tmp_path: Path
) -> None:
    engine = FailingEngine(kill_at=2)  # round 1 refused by the checks, its worker dies in 2
    factory.loop.engines = {"recipe:lint-fix": engine}
    repo = sample_service(tmp_path / "sample-service")
    with pytest.raises(WorkerKilled):
        accept_ticket(factory, payload=LINT_TICKET, repo=repo)
    [run_id] = {e.run_id for e in factory.audit.events() if e.name == "run-created"}
    cap = factory.loop.max_rounds(engine.name)
    assert cap == 2 and factory.store.require_run(run_id).state is RunState.PROPOSING
    run = factory.loop.execute(run_id)  # the successor
    assert run.state is RunState.FAILED and f"after {cap} rounds" in run.reason, run.reason
    assert engine.calls == 2  # the dead worker's round 2 counted: no third proposal
    states = [change.state for change in run.history]
    assert states.count(RunState.PROPOSING) == cap


def test_a_run_taken_over_goes_on_numbering_its_rounds(factory: Factory, tmp_path: Path) -> None:
    engine = FailingEngine(kill_at=1)  # its worker dies in round 1
    factory.loop.engines = {"recipe:lint-fix": engine}
    repo = sample_service(tmp_path / "sample-service")
    with pytest.raises(WorkerKilled):
        accept_ticket(factory, payload=LINT_TICKET, repo=repo)
    [run_id] = {e.run_id for e in factory.audit.events() if e.name == "run-created"}
    run = factory.loop.execute(run_id)
    assert run.state is RunState.FAILED and "after 2 rounds" in run.reason, run.reason
    events = factory.audit.events(run_id)
    proposed = [e.data["round"] for e in events if e.name == "engine-proposed"]
    assert proposed == [2]  # round 1 died with its worker; the successor's is round 2
    assert engine.calls == 2
