"""The in-harness agent's tools and gate chain on a real bubblewrap workspace, driven by
pydantic-ai's `FunctionModel` playing a script of tool calls."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from pydantic_ai.messages import (
    ModelMessage,
    ModelMessagesTypeAdapter,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

from codefactory.domain import ChangeKind, CheckResult, Finding, Severity, Task
from codefactory.engines import EngineError
from codefactory.engines.agent import (
    AgentSettings,
    BudgetExhausted,
    NoFinish,
    PydanticAIAgent,
    StepCapReached,
)
from codefactory.engines.agent.tools import ToolLimits
from codefactory.engines.session import Budget, EngineSession, ToolRefused
from codefactory.sandbox.bubblewrap import BubblewrapSandbox, BubblewrapWorkspace
from tests.conftest import make_repo

pytestmark = pytest.mark.usefixtures("bwrap_available")

TASK = Task(
    kind=ChangeKind.GENERAL_CHANGE, title="Fix the total", body="total() adds one too many."
)
APP = "def total(items):\n    return sum(items) + 1\n\n\ndef count(items):\n    return len(items)\n"
FILES = {"app.py": APP, "AGENTS.md": "Run tests with pytest.\n", "docs/notes.txt": "x = 1\nx = 1\n"}

Step = tuple[str, dict[str, Any]] | str
"""A tool call `(name, arguments)`, or a text answer."""


def scripted(*steps: Step, seen: list[AgentInfo] | None = None) -> FunctionModel:
    """A model answering request n with `steps[n]`; the last step repeats forever."""

    def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if seen is not None:
            seen.append(info)
        index = sum(isinstance(m, ModelResponse) for m in messages)
        step = steps[min(index, len(steps) - 1)]
        if isinstance(step, str):
            return ModelResponse(parts=[TextPart(step)])
        name, args = step
        return ModelResponse(parts=[ToolCallPart(name, args, tool_call_id=f"call-{index}")])

    return FunctionModel(answer, model_name="scripted")


class Evidence:
    """An evidence sink keeping files in a folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __call__(self, name: str, content: bytes) -> Path:
        path = self.folder / name
        path.write_bytes(content)
        return path

    def messages(self, round_: int = 1) -> list[ModelMessage]:
        raw = (self.folder / f"agent-messages-round-{round_}.json").read_bytes()
        return ModelMessagesTypeAdapter.validate_json(raw)

    def tool_answers(self, round_: int = 1) -> list[tuple[str, str]]:
        """`(tool name, answer)` of every tool call in the round, in order."""
        return [
            (part.tool_name, str(part.content))
            for message in self.messages(round_)
            if isinstance(message, ModelRequest)
            for part in message.parts
            if isinstance(part, ToolReturnPart)
        ]


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[BubblewrapWorkspace]:
    sha = make_repo(tmp_path / "repo", FILES)
    sandbox = BubblewrapSandbox(tmp_path / "work", tmp_path / "cache")
    ws = sandbox.provision(repo=tmp_path / "repo", commit=sha, run_id="agent1")
    yield ws
    ws.destroy()


@pytest.fixture
def evidence(tmp_path: Path) -> Evidence:
    (tmp_path / "evidence").mkdir()
    return Evidence(tmp_path / "evidence")


def _session(evidence: Evidence, **kwargs: Any) -> EngineSession:
    return EngineSession(run_id="agent1", evidence=evidence, **kwargs)


def _changed(ws: BubblewrapWorkspace) -> dict[str, str]:
    return {f.path: (f.content or b"").decode() for f in ws.changes().files}


def _run(
    ws: BubblewrapWorkspace,
    evidence: Evidence,
    *steps: Step,
    settings: AgentSettings | None = None,
    **session: Any,
) -> Any:
    agent = PydanticAIAgent(settings, model=scripted(*steps))
    return agent.propose(TASK, ws, [], _session(evidence, **session))


FIX = ("edit_file", {"path": "app.py", "old": "sum(items) + 1", "new": "sum(items)"})
FINISH = ("finish", {"summary": "total() no longer adds one."})


def test_read_edit_finish_makes_the_change_and_keeps_the_evidence(
    workspace: BubblewrapWorkspace, evidence: Evidence
) -> None:
    proposal = _run(workspace, evidence, ("read_file", {"path": "app.py"}), FIX, FINISH)
    assert _changed(workspace) == {"app.py": APP.replace("sum(items) + 1", "sum(items)")}
    assert proposal.engine == "agent:pydantic-ai"
    assert proposal.engine_version.endswith("+scripted")
    assert proposal.rationale == "total() no longer adds one."
    assert proposal.details["tool_calls"] == {"edit_file": 1, "finish": 1, "read_file": 1}
    assert proposal.details["requests"] == 3
    assert proposal.details["input_tokens"] > 0 and proposal.details["output_tokens"] > 0
    answers = evidence.tool_answers()
    assert answers[0] == ("read_file", APP)
    assert answers[1][0] == "edit_file" and answers[1][1].startswith("edited app.py")
    assert answers[2] == ("finish", "finished")


def test_prompt_carries_ticket_agents_md_and_failed_checks(
    workspace: BubblewrapWorkspace, evidence: Evidence
) -> None:
    failed = CheckResult(
        check="tests",
        passed=False,
        summary="1 failed",
        findings=(
            Finding(
                check="tests",
                rule="test_total",
                message="assert 7 == 6",
                severity=Severity.HIGH,
                path="tests/test_app.py",
                line=4,
            ),
        ),
    )
    agent = PydanticAIAgent(model=scripted(FINISH))
    agent.propose(TASK, workspace, [failed], _session(evidence, round=2))
    first = evidence.messages(round_=2)[0]
    assert isinstance(first, ModelRequest)
    prompt = "".join(str(part.content) for part in first.parts)
    assert "# Ticket: Fix the total" in prompt and "adds one too many" in prompt
    assert "# Repository instructions (AGENTS.md)\n\nRun tests with pytest." in prompt
    assert "## tests: 1 failed" in prompt
    assert "- tests/test_app.py:4 [test_total] assert 7 == 6" in prompt
    assert "call finish" in (first.instructions or "")


def test_edit_file_that_is_ambiguous_or_missing_changes_nothing(
    workspace: BubblewrapWorkspace, evidence: Evidence
) -> None:
    _run(
        workspace,
        evidence,
        ("edit_file", {"path": "docs/notes.txt", "old": "x = 1", "new": "x = 2"}),
        ("edit_file", {"path": "app.py", "old": "return  len", "new": "return len"}),
        ("edit_file", {"path": "app.py", "old": "", "new": "overwrite"}),
        ("edit_file", {"path": "new/module.py", "old": "", "new": "VALUE = 1\n"}),
        FINISH,
    )
    answers = [text for _, text in evidence.tool_answers()]
    assert answers[0] == (
        "`old` occurs 2 times in docs/notes.txt: include more surrounding lines so that it "
        "occurs exactly once"
    )
    assert answers[1].startswith("`old` does not occur in app.py")
    assert answers[2] == "app.py exists: give the text to replace in `old`"
    assert answers[3] == "created new/module.py (1 lines)"
    assert _changed(workspace) == {"new/module.py": "VALUE = 1\n"}


def test_apply_patch_applies_whole_or_not_at_all(
    workspace: BubblewrapWorkspace, evidence: Evidence
) -> None:
    good = (
        "--- a/app.py\n+++ b/app.py\n@@ -1,4 +1,4 @@\n def total(items):\n"
        "-    return sum(items) + 1\n+    return sum(items)\n \n \n"
    )
    # the second file's hunk does not match: the first file must not change either
    bad = (
        good
        + "--- a/docs/notes.txt\n+++ b/docs/notes.txt\n@@ -1,2 +1,2 @@\n-y = 1\n+y = 2\n x = 1\n"
    )
    _run(
        workspace,
        evidence,
        ("apply_patch", {"patch": bad}),
        ("apply_patch", {"patch": "just some words"}),
        ("apply_patch", {"patch": good.replace("a/app.py", "a/../outside.py")}),
        ("apply_patch", {"patch": good}),
        FINISH,
    )
    answers = [text for _, text in evidence.tool_answers()]
    assert answers[0].startswith("the patch did not apply, nothing was changed:")
    assert "docs/notes.txt" in answers[0]
    assert answers[1] == "not a unified diff: no '@@' hunk header found"
    assert answers[2] == "path '../outside.py' is not allowed: '..' would leave the workspace"
    assert answers[3] == "Applied patch app.py cleanly."
    assert _changed(workspace) == {"app.py": APP.replace("sum(items) + 1", "sum(items)")}


@pytest.mark.parametrize(
    ("call", "answer"),
    [
        (
            ("read_file", {"path": "/etc/passwd"}),
            "path '/etc/passwd' is not allowed: give a path relative to the workspace root, "
            "such as 'src/app.py'",
        ),
        (
            ("read_file", {"path": "docs/../../etc/passwd"}),
            "path 'docs/../../etc/passwd' is not allowed: '..' would leave the workspace",
        ),
        (
            ("edit_file", {"path": "../x.py", "old": "", "new": "x"}),
            "path '../x.py' is not allowed: '..' would leave the workspace",
        ),
        (
            ("search", {"pattern": "root", "path": "/etc"}),
            "path '/etc' is not allowed: give a path relative to the workspace root, "
            "such as 'src/app.py'",
        ),
        (
            ("read_file", {"path": "nope.py"}),
            "no such file: nope.py (list_files shows what exists)",
        ),
    ],
)
def test_paths_outside_the_workspace_are_refused(
    workspace: BubblewrapWorkspace, evidence: Evidence, call: Step, answer: str
) -> None:
    _run(workspace, evidence, call, FINISH)
    assert evidence.tool_answers()[0] == (call[0], answer)
    assert _changed(workspace) == {}


def test_list_files_and_search_use_ripgrep_in_the_sandbox(
    workspace: BubblewrapWorkspace, evidence: Evidence
) -> None:
    _run(
        workspace,
        evidence,
        ("list_files", {"path": "."}),
        ("list_files", {"path": "docs"}),
        ("search", {"pattern": r"def \w+\(", "path": "."}),
        ("search", {"pattern": "absent_name", "path": "."}),
        ("search", {"pattern": "(unclosed", "path": "."}),
        ("list_files", {"path": "missing"}),
        FINISH,
    )
    answers = [text for _, text in evidence.tool_answers()]
    assert answers[0] == "AGENTS.md\napp.py\ndocs/notes.txt"
    assert answers[1] == "docs/notes.txt"
    assert answers[2].splitlines() == ["app.py:1:def total(items):", "app.py:5:def count(items):"]
    assert answers[3] == "no matches for 'absent_name' under ."
    assert answers[4].startswith("search failed: regex parse error")
    assert answers[5].startswith("cannot list missing:")


def test_run_reports_exit_code_caps_output_and_times_out(
    workspace: BubblewrapWorkspace, evidence: Evidence
) -> None:
    settings = AgentSettings(tools=ToolLimits(run_timeout_s=1.0, output_chars=200))
    _run(
        workspace,
        evidence,
        ("run", {"command": "echo hello; echo oops >&2; exit 3"}),
        ("run", {"command": "seq 1 10000"}),
        ("run", {"command": "sleep 30"}),
        ("run", {"command": "echo x > made.txt"}),
        FINISH,
        settings=settings,
    )
    answers = [text for _, text in evidence.tool_answers()]
    assert answers[0] == "exit code 3\nhello\n\n[stderr]\noops\n"
    assert answers[1].startswith("exit code 0\n1\n2\n3\n")
    assert "characters cut ...]" in answers[1] and answers[1].endswith("9999\n10000\n")
    assert len(answers[1]) < 300
    assert answers[2].startswith("timed out after 1 s and was killed")
    assert _changed(workspace) == {"made.txt": "x\n"}


def test_refused_tool_call_is_not_executed_and_the_model_is_told(
    workspace: BubblewrapWorkspace, evidence: Evidence
) -> None:
    asked: list[tuple[str, Mapping[str, Any]]] = []

    def gate(tool: str, arguments: Mapping[str, Any]) -> None:
        asked.append((tool, arguments))
        if tool in ("edit_file", "run"):
            raise ToolRefused(f"{tool} is not allowed for this ticket")

    proposal = _run(
        workspace, evidence, FIX, ("run", {"command": "echo x > made.txt"}), FINISH, tools=gate
    )
    assert asked == [
        ("edit_file", {"path": "app.py", "old": "sum(items) + 1", "new": "sum(items)"}),
        ("run", {"command": "echo x > made.txt"}),
        ("finish", {"summary": "total() no longer adds one."}),
    ]
    assert [text for _, text in evidence.tool_answers()][:2] == [
        "refused by policy: edit_file is not allowed for this ticket",
        "refused by policy: run is not allowed for this ticket",
    ]
    assert _changed(workspace) == {}
    assert proposal.details["refused"] == {"edit_file": 1, "run": 1}


def test_a_gate_that_fails_ends_the_round(
    workspace: BubblewrapWorkspace, evidence: Evidence
) -> None:
    def broken(tool: str, arguments: Mapping[str, Any]) -> None:
        raise RuntimeError("audit log unavailable")

    with pytest.raises(RuntimeError, match="audit log unavailable"):
        _run(workspace, evidence, FIX, FINISH, tools=broken)
    assert _changed(workspace) == {}


def test_allow_list_decides_which_tools_the_model_sees(
    workspace: BubblewrapWorkspace, evidence: Evidence
) -> None:
    seen: list[AgentInfo] = []
    agent = PydanticAIAgent(model=scripted(FIX, FINISH, seen=seen))
    session = _session(evidence, allowed_tools=("read_file", "finish"))
    agent.propose(TASK, workspace, [], session)
    assert {tool.name for tool in seen[0].function_tools} == {"read_file", "finish"}
    # a call of a tool it was not offered runs nothing
    assert _changed(workspace) == {}
    assert evidence.tool_answers()[0][0] == "edit_file"
    assert "Unknown tool name" in str(evidence.messages()[2])


@pytest.mark.parametrize(
    ("allowed", "message"),
    [
        (("read_file", "Bash", "finish"), r"tools the agent does not have: \['Bash'\]"),
        (("read_file",), "leaves out finish"),
    ],
)
def test_a_bad_allow_list_is_an_engine_error(
    workspace: BubblewrapWorkspace, evidence: Evidence, allowed: tuple[str, ...], message: str
) -> None:
    with pytest.raises(EngineError, match=message):
        _run(workspace, evidence, FINISH, allowed_tools=allowed)


def test_every_tool_has_its_public_name_and_arguments(
    workspace: BubblewrapWorkspace, evidence: Evidence
) -> None:
    seen: list[AgentInfo] = []
    PydanticAIAgent(model=scripted(FINISH, seen=seen)).propose(
        TASK, workspace, [], _session(evidence)
    )
    schema = {
        tool.name: sorted(tool.parameters_json_schema["properties"])
        for tool in seen[0].function_tools
    }
    assert schema == {
        "read_file": ["path"],
        "list_files": ["path"],
        "search": ["path", "pattern"],
        "edit_file": ["new", "old", "path"],
        "apply_patch": ["patch"],
        "run": ["command"],
        "finish": ["summary"],
    }


def test_text_without_finish_is_no_finish_and_keeps_evidence(
    workspace: BubblewrapWorkspace, evidence: Evidence
) -> None:
    with pytest.raises(NoFinish, match="without calling finish: 'I think it is done.'") as info:
        _run(workspace, evidence, FIX, "I think it is done.")
    assert info.value.reason == "no-finish"
    assert len(evidence.messages()) == 4  # prompt, edit call, its answer, the text


def test_request_budget_ends_a_looping_agent(
    workspace: BubblewrapWorkspace, evidence: Evidence
) -> None:
    with pytest.raises(BudgetExhausted, match="request_limit of 3") as info:
        _run(workspace, evidence, ("list_files", {"path": "."}), budget=Budget(requests=3))
    assert info.value.measure == "requests"
    assert sum(isinstance(m, ModelResponse) for m in evidence.messages()) == 3


def test_token_and_cost_budgets_end_the_round(
    workspace: BubblewrapWorkspace, evidence: Evidence
) -> None:
    with pytest.raises(BudgetExhausted) as tokens:
        _run(workspace, evidence, ("list_files", {"path": "."}), budget=Budget(input_tokens=200))
    assert tokens.value.measure == "input_tokens"
    from codefactory.engines.session import Price

    expensive = Budget(cost_usd=0.001, prices={"scripted": Price(input_per_mtok=10.0)})
    with pytest.raises(BudgetExhausted, match=r"cost_usd: spent \$0.00") as cost:
        _run(workspace, evidence, ("list_files", {"path": "."}), budget=expensive)
    assert cost.value.measure == "cost_usd"


def test_step_cap_ends_a_looping_agent(workspace: BubblewrapWorkspace, evidence: Evidence) -> None:
    with pytest.raises(StepCapReached, match="2 model requests without a call to finish"):
        _run(
            workspace,
            evidence,
            ("read_file", {"path": "app.py"}),
            settings=AgentSettings(max_steps=2),
        )


def test_no_model_access_is_an_engine_error(workspace: BubblewrapWorkspace) -> None:
    with pytest.raises(EngineError, match="no model access for agent:pydantic-ai"):
        PydanticAIAgent().propose(TASK, workspace, [], EngineSession(run_id="agent1"))


def test_evidence_is_the_pydantic_ai_message_format(
    workspace: BubblewrapWorkspace, evidence: Evidence
) -> None:
    _run(workspace, evidence, FINISH)
    raw = json.loads((evidence.folder / "agent-messages-round-1.json").read_text())
    assert [m["kind"] for m in raw] == ["request", "response", "request"]


def test_wall_time_budget_ends_the_round(
    workspace: BubblewrapWorkspace, evidence: Evidence
) -> None:
    settings = AgentSettings(tools=ToolLimits(run_timeout_s=2.0))
    with pytest.raises(BudgetExhausted, match="wall_s: the round ran out of wall-clock time"):
        _run(
            workspace,
            evidence,
            ("run", {"command": "sleep 1"}),
            settings=settings,
            budget=Budget(wall_s=1.5),
        )
    assert sum(isinstance(m, ModelResponse) for m in evidence.messages()) == 2
