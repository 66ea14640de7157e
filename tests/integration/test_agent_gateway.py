"""The in-harness agent end to end over real HTTP: pydantic-ai with the OpenAI and Anthropic
SDKs, through the model gateway (TLS with the factory CA) to the replay upstream playing a
script, in a real bubblewrap workspace."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic_ai.messages import ModelRequest, ToolReturnPart

from codefactory.domain import ChangeKind, CheckResult, Task
from codefactory.engines.agent import (
    BudgetExhausted,
    ModelUnavailable,
    NoFinish,
    PydanticAIAgent,
)
from codefactory.engines.gateway import ModelCall, ModelGateway
from codefactory.engines.session import Budget, EngineSession, ModelAccess
from codefactory.engines.settings import GatewaySettings
from codefactory.sandbox.bubblewrap import BubblewrapSandbox, BubblewrapWorkspace
from tests.conftest import make_repo
from tests.integration.test_agent_tools import Evidence

pytestmark = pytest.mark.usefixtures("bwrap_available")

TRANSCRIPTS = Path(__file__).resolve().parents[1] / "fixtures" / "transcripts"
CALC = "def add(a, b):\n    return a - b\n"
TASK = Task(kind=ChangeKind.GENERAL_CHANGE, title="add() subtracts", body="add(2, 2) == 0")
PROTOCOLS = ["openai-chat", "openai-responses", "anthropic-messages"]


class Gateway:
    """A started gateway over one transcript, and the records of its calls."""

    def __init__(self, tmp: Path, transcript: str, **settings: Any) -> None:
        self.calls: list[ModelCall] = []
        self.service = ModelGateway(
            GatewaySettings(upstream=f"replay:{TRANSCRIPTS / transcript}", **settings),
            state_dir=tmp / "gateway",
            traffic_dir=tmp / "traffic",
            on_call=self.calls.append,
        )
        self.service.start()

    def access(self, protocol: str, budget: Budget, run_id: str = "agent1") -> ModelAccess:
        credential = self.service.grant(
            run_id, "agent-1", "sponsor@example.com", "agent:pydantic-ai", "gpt-4.1-mini", budget
        )
        return self.service.access(credential, "gpt-4.1-mini", protocol, local=True)


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[BubblewrapWorkspace]:
    sha = make_repo(tmp_path / "repo", {"src/calc.py": CALC, "AGENTS.md": "Keep it small.\n"})
    ws = BubblewrapSandbox(tmp_path / "work", tmp_path / "cache").provision(
        repo=tmp_path / "repo", commit=sha, run_id="agent1"
    )
    yield ws
    ws.destroy()


@pytest.fixture
def evidence(tmp_path: Path) -> Evidence:
    (tmp_path / "evidence").mkdir()
    return Evidence(tmp_path / "evidence")


@pytest.fixture
def gateways(tmp_path: Path) -> Iterator[list[Gateway]]:
    started: list[Gateway] = []
    yield started
    for gateway in started:
        gateway.service.stop()


def _gateway(gateways: list[Gateway], tmp: Path, transcript: str, **settings: object) -> Gateway:
    gateway = Gateway(tmp, transcript, **settings)
    gateways.append(gateway)
    return gateway


def _changed(ws: BubblewrapWorkspace) -> dict[str, str]:
    return {f.path: (f.content or b"").decode() for f in ws.changes().files}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_scripted_fix_through_the_gateway(
    protocol: str,
    workspace: BubblewrapWorkspace,
    evidence: Evidence,
    gateways: list[Gateway],
    tmp_path: Path,
) -> None:
    gateway = _gateway(gateways, tmp_path, "agent_read_edit_finish.json")
    budget = Budget(requests=10)
    access = gateway.access(protocol, budget)
    assert access.base_url.startswith("https://127.0.0.1:")
    session = EngineSession(run_id="agent1", model=access, budget=budget, evidence=evidence)

    proposal = PydanticAIAgent().propose(TASK, workspace, [], session)

    assert _changed(workspace) == {"src/calc.py": "def add(a, b):\n    return a + b\n"}
    assert proposal.rationale == "Fixed add() in src/calc.py: it subtracted instead of adding."
    assert proposal.engine_version.endswith("+gpt-4.1-mini")
    assert proposal.details["tool_calls"] == {"edit_file": 1, "finish": 1, "read_file": 1}
    assert proposal.details["requests"] == 3
    assert proposal.details["output_tokens"] >= 40  # the edit step reports 40 itself
    answers = evidence.tool_answers()
    assert answers[0] == ("read_file", CALC)
    assert answers[2] == ("finish", "finished")
    model_calls = [c for c in gateway.calls if c.protocol == protocol]
    assert [c.status for c in model_calls] == [200, 200, 200]
    assert {c.run_id for c in model_calls} == {"agent1"}
    assert gateway.service.spend("agent1").requests == 3


def test_two_rounds_with_check_feedback(
    workspace: BubblewrapWorkspace, evidence: Evidence, gateways: list[Gateway], tmp_path: Path
) -> None:
    gateway = _gateway(gateways, tmp_path, "agent_two_rounds.json")
    budget = Budget(requests=10)
    access = gateway.access("openai-chat", budget)
    agent = PydanticAIAgent()
    first = agent.propose(
        TASK, workspace, [], EngineSession(run_id="agent1", model=access, evidence=evidence)
    )
    assert first.rationale == "add() adds now."
    assert _changed(workspace) == {"src/calc.py": "def add(a, b):\n    return a + b + 0.0\n"}

    failed = CheckResult(check="tests", passed=False, summary="add(1, 2) returned 3.0")
    second = agent.propose(
        TASK,
        workspace,
        [failed],
        EngineSession(run_id="agent1", round=2, model=access, evidence=evidence),
    )
    assert second.rationale == "add() returns an int for ints again."
    assert _changed(workspace) == {"src/calc.py": "def add(a, b):\n    return a + b\n"}
    assert evidence.tool_answers(round_=2)[0] == (
        "search",
        "src/calc.py:2:    return a + b + 0.0",
    )


@pytest.mark.parametrize("protocol", ["openai-chat", "anthropic-messages"])
def test_model_answering_text_is_no_finish(
    protocol: str,
    workspace: BubblewrapWorkspace,
    evidence: Evidence,
    gateways: list[Gateway],
    tmp_path: Path,
) -> None:
    gateway = _gateway(gateways, tmp_path, "agent_text_only.json")
    access = gateway.access(protocol, Budget())
    session = EngineSession(run_id="agent1", model=access, evidence=evidence)
    with pytest.raises(NoFinish, match="Looks fine to me."):
        PydanticAIAgent().propose(TASK, workspace, [], session)
    assert len(evidence.messages()) == 4


def test_gateway_budget_spent_is_budget_exhausted(
    workspace: BubblewrapWorkspace, evidence: Evidence, gateways: list[Gateway], tmp_path: Path
) -> None:
    gateway = _gateway(gateways, tmp_path, "looping.json")
    # the gateway holds the run to 2 requests; the agent's own budget would allow 10
    access = gateway.access("openai-chat", Budget(requests=2))
    session = EngineSession(
        run_id="agent1", model=access, budget=Budget(requests=10), evidence=evidence
    )
    with pytest.raises(BudgetExhausted, match="run budget spent") as info:
        PydanticAIAgent().propose(TASK, workspace, [], session)
    assert info.value.measure == "gateway"
    assert [c.status for c in gateway.calls if c.protocol == "openai-chat"] == [200, 200, 429]


def test_in_process_budget_stops_a_looping_model(
    workspace: BubblewrapWorkspace, evidence: Evidence, gateways: list[Gateway], tmp_path: Path
) -> None:
    gateway = _gateway(gateways, tmp_path, "looping.json")
    budget = Budget(requests=50, output_tokens=120)  # each looping step reports 50
    access = gateway.access("openai-responses", budget)
    session = EngineSession(run_id="agent1", model=access, budget=budget, evidence=evidence)
    with pytest.raises(BudgetExhausted, match="output_tokens_limit of 120") as info:
        PydanticAIAgent().propose(TASK, workspace, [], session)
    assert info.value.measure == "output_tokens"
    assert gateway.service.spend("agent1").requests == 3


def test_server_errors_after_retries_are_model_unavailable(
    workspace: BubblewrapWorkspace, evidence: Evidence, gateways: list[Gateway], tmp_path: Path
) -> None:
    gateway = _gateway(gateways, tmp_path, "agent_server_errors.json", retries=1)
    access = gateway.access("anthropic-messages", Budget())
    session = EngineSession(run_id="agent1", model=access, evidence=evidence)
    with pytest.raises(ModelUnavailable, match="HTTP 500") as info:
        PydanticAIAgent().propose(TASK, workspace, [], session)
    assert info.value.status == 500
    # the gateway's first attempt and its retry, for the SDK's first attempt and its retry
    assert [c.status for c in gateway.calls if c.attempt > 0] == [500, 500, 500, 500]
    assert _changed(workspace) == {}


def test_a_gateway_with_another_ca_is_not_trusted(
    workspace: BubblewrapWorkspace, evidence: Evidence, gateways: list[Gateway], tmp_path: Path
) -> None:
    gateway = _gateway(gateways, tmp_path, "agent_read_edit_finish.json")
    access = gateway.access("openai-chat", Budget())
    other = _gateway(gateways, tmp_path / "other", "agent_read_edit_finish.json")
    untrusted = ModelAccess(
        base_url=access.base_url,
        egress_host=access.egress_host,
        credential=access.credential,
        ca_file=other.service.ca_file,
        model=access.model,
        protocol=access.protocol,
    )
    session = EngineSession(run_id="agent1", model=untrusted, evidence=evidence)
    with pytest.raises(ModelUnavailable, match="(?i)connection"):
        PydanticAIAgent().propose(TASK, workspace, [], session)
    assert gateway.calls == []


@pytest.mark.parametrize("protocol", ["openai-chat", "anthropic-messages"])
def test_malformed_and_unknown_tool_calls_go_back_to_the_model(
    protocol: str,
    workspace: BubblewrapWorkspace,
    evidence: Evidence,
    gateways: list[Gateway],
    tmp_path: Path,
) -> None:
    gateway = _gateway(gateways, tmp_path, "agent_malformed_call.json")
    session = EngineSession(
        run_id="agent1", model=gateway.access(protocol, Budget()), evidence=evidence
    )
    proposal = PydanticAIAgent().propose(TASK, workspace, [], session)
    assert proposal.rationale == "Fixed add()."
    assert _changed(workspace) == {"src/calc.py": "def add(a, b):\n    return a + b\n"}
    # neither bad call reached the gate or a tool; the model was told about each
    assert proposal.details["tool_calls"] == {"edit_file": 1, "finish": 1}
    retried = [
        part
        for message in evidence.messages()
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, ToolReturnPart) and part.outcome == "retried"
    ]
    assert [part.retry.cause for part in retried if part.retry] == [
        "validation_error",
        "unknown_tool",
    ]
    assert "Invalid JSON" in str(retried[0].content)
    assert "Unknown tool name: 'read_file_undeclared'" in str(retried[1].content)


def test_a_body_that_breaks_off_is_model_unavailable(
    workspace: BubblewrapWorkspace, evidence: Evidence, gateways: list[Gateway], tmp_path: Path
) -> None:
    gateway = _gateway(gateways, tmp_path, "agent_truncated.json")
    session = EngineSession(
        run_id="agent1", model=gateway.access("openai-responses", Budget()), evidence=evidence
    )
    with pytest.raises(ModelUnavailable, match="Failed to decode response as JSON"):
        PydanticAIAgent().propose(TASK, workspace, [], session)
    assert _changed(workspace) == {}
