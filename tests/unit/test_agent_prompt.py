"""The agent's prompt: ticket, context, repository instructions and check feedback, capped."""

from __future__ import annotations

from codefactory.domain import ChangeKind, CheckResult, Finding, Severity, Task
from codefactory.engines.agent.prompt import INSTRUCTIONS, PromptLimits, build_prompt

TASK = Task(
    kind=ChangeKind.GENERAL_CHANGE,
    title="Parse dates in UTC",
    body="parse() returns local times.",
    context={"ticket:comments": "It broke on 2024-03-31.", "repo:package": {"name": "dates"}},
)


def _finding(n: int) -> Finding:
    return Finding(
        check="lint",
        rule=f"E{n}",
        message=f"problem   {n}\nsecond line",
        severity=Severity.LOW,
        path="src/app.py",
        line=n,
    )


def test_first_round_has_ticket_context_and_instructions_in_order() -> None:
    prompt = build_prompt(
        TASK, instructions=[("AGENTS.md", "Use pytest."), ("CLAUDE.md", "Be brief.")]
    )
    assert prompt.startswith("# Ticket: Parse dates in UTC\n\nparse() returns local times.")
    assert "## ticket:comments\n\nIt broke on 2024-03-31." in prompt
    assert '## repo:package\n\n{\n "name": "dates"\n}' in prompt
    positions = [
        prompt.index(s)
        for s in ("# Ticket", "# Context", "(AGENTS.md)\n\nUse pytest.", "(CLAUDE.md)\n\nBe brief.")
    ]
    assert positions == sorted(positions)
    assert "failed these checks" not in prompt


def test_feedback_lists_failed_checks_only_with_capped_findings() -> None:
    failed = CheckResult(
        check="lint", passed=False, summary="3 findings", findings=tuple(map(_finding, (1, 2, 3)))
    )
    passed = CheckResult(check="tests", passed=True, summary="all passed")
    prompt = build_prompt(
        TASK, feedback=[failed, passed], limits=PromptLimits(findings_per_check=2)
    )
    assert "# Your previous attempt failed these checks" in prompt
    assert "Fix what these checks report" in prompt
    assert "## lint: 3 findings\n- src/app.py:1 [E1] problem 1 second line\n" in prompt
    assert "- src/app.py:2 [E2] problem 2 second line\n- ... and 1 more findings" in prompt
    assert "## tests" not in prompt and "all passed" not in prompt


def test_long_parts_are_cut_with_a_note() -> None:
    task = Task(kind=ChangeKind.GENERAL_CHANGE, title="t", body="x" * 500, context={"c": "y" * 500})
    prompt = build_prompt(task, limits=PromptLimits(body_chars=100, context_item_chars=50))
    assert "x" * 100 + "\n[truncated: 400 more characters]" in prompt
    assert "y" * 50 + "\n[truncated: 450 more characters]" in prompt
    assert "x" * 101 not in prompt and "y" * 51 not in prompt


def test_standing_instructions_forbid_weakening_the_checks() -> None:
    for phrase in (
        "smallest change",
        "Do not edit, delete or weaken tests",
        "# noqa",
        "call finish",
    ):
        assert phrase in INSTRUCTIONS
