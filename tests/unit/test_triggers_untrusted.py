"""Untrusted trigger text and deliveries (issue 11, item 6): control characters refused,
JSON depth checked before parsing, rejections counted per minute and rate-limited, commit
trailers built only from the factory's own values (read back by `git interpret-trailers`)."""

from __future__ import annotations

import json
import subprocess
import time
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codefactory.dispatch.scheduler import Scheduler
from codefactory.domain import ChangeKind, Proposal, Run, RunState, TriggerEvent
from codefactory.runs.loop import commit_message
from codefactory.triggers.duplicates import DuplicateCount, DuplicateTally
from codefactory.triggers.payload import JsonTooDeep, json_depth_ok, loads
from codefactory.triggers.rejections import RejectionBudget, RejectionCount, RejectionTally
from codefactory.triggers.text import TextRefused, check_line, one_line, refused_character

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("PAY-1\nOn-Behalf-Of: user:ceo", "character 5 is a control character (U+000A)"),
        ("priya.shah\u200b", "character 10 is a format character"),
        ("abc\u202edcba", "(U+202E)"),
        ("a\u2028b", "a line separator (U+2028)"),
        ("tab\there", "(U+0009)"),
    ],
)
def test_one_line_text_with_refused_characters_is_refused(value: str, reason: str) -> None:
    with pytest.raises(TextRefused) as refused:
        check_line(value, what="the title")
    assert reason in str(refused.value) and str(refused.value).startswith("the title refused")


def test_bodies_keep_newlines_and_tabs_but_not_other_controls() -> None:
    assert check_line("line 1\n\tline 2\r\n", what="the body", keep="\n\r\t")
    assert "U+001B" in refused_character("colour \x1b[31m", keep="\n\r\t")
    assert check_line("Ünïcödé title — fine [/x]", what="the title")


def test_one_line_escapes_what_it_cannot_keep() -> None:
    assert one_line("Fix\nReviewed-by: x") == "Fix\\nReviewed-by: x"
    assert one_line("a\u200bb") == "a\\u200bb" and one_line("") == "(none)"
    assert len(one_line("x" * 500)) == 201  # 200 characters and an ellipsis


def test_json_depth_is_checked_before_parsing() -> None:
    assert loads('{"a": "[[[[[[", "b": [1, {"c": "]]]"}]}') == {
        "a": "[[[[[[",
        "b": [1, {"c": "]]]"}],
    }
    assert loads(json.dumps({"q": 'quote \\" [[['})) == {"q": 'quote \\" [[['}
    json_depth_ok("[" * 64 + "]" * 64)
    with pytest.raises(JsonTooDeep, match="deeper than 64"):
        loads("[" * 65 + "]" * 65)
    with pytest.raises(JsonTooDeep):
        loads(b"[" * 1_000_000)  # would be a RecursionError in json.loads


@given(st.text(alphabet='[]{}"\\ ax,:', max_size=200))
def test_the_depth_check_never_raises_anything_else(text: str) -> None:
    try:
        json_depth_ok(text, 8)
    except JsonTooDeep:
        pass


def reference_depth(text: str) -> int:
    """The deepest nesting by a plain character-at-a-time state machine (the spec)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


@given(st.text(alphabet='[]{}"\\ ax,:', max_size=200))
def test_the_depth_check_agrees_with_a_character_state_machine(text: str) -> None:
    try:
        json_depth_ok(text, 8)
        refused = False
    except JsonTooDeep:
        refused = True
    assert refused == (reference_depth(text) > 8)


@pytest.mark.parametrize(
    "text",
    [
        '"\\' * (1 << 19),  # the red team's: every quote escaped, the string never ends
        "[]" * (1 << 19),
        '"a",' * (1 << 18),
        '"' * (1 << 20),
        "\\" * (1 << 20),
        '[1,{"a":"\\"x"}],' * (1 << 16),
    ],
)
def test_the_depth_check_is_linear_on_a_mebibyte_of_anything(text: str) -> None:
    started = time.perf_counter()
    json_depth_ok(text)
    assert time.perf_counter() - started < 1.0  # quadratic: hours for a mebibyte


def test_deep_nesting_after_a_mebibyte_of_escapes_is_still_refused() -> None:
    with pytest.raises(JsonTooDeep):
        json_depth_ok('"' + "\\x" * (1 << 19) + '"' + "[" * 65)
    json_depth_ok('"' + "\\x" * (1 << 19) + "[" * 65)  # inside the unterminated string


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0  # a minute boundary: 30_000_000 minutes

    def __call__(self) -> float:
        return self.now


def test_rejections_are_published_once_per_source_reason_and_minute() -> None:
    clock = Clock()
    published: list[list[RejectionCount]] = []
    tally = RejectionTally(published.append, clock=clock)
    for index in range(500):
        tally.count(
            source="github",
            reason="signature",
            status=401,
            client=f"10.0.0.{index % 7}",
            delivery_id=f"id-{index}" * 50,
            detail="`X-Hub-Signature-256` does not match",
        )
    tally.count(source="github", reason="stale", status=401, client="10.0.0.1",
                delivery_id="", detail="old")  # fmt: skip
    assert published == [] and tally.pending() == 501
    clock.now += 60  # the minute rolls over: the next rejection publishes the last minute's
    tally.count(source="slack", reason="signature", status=401, client="10.0.0.9",
                delivery_id="", detail="")  # fmt: skip
    assert [(c.source, c.reason, c.count, len(c.clients)) for c in published[0]] == [
        ("github", "signature", 500, 7),
        ("github", "stale", 1, 1),
    ]
    data: dict[str, Any] = published[0][0].audit_data(128)
    assert data["minute"] == "2027-01-15T08:00:00+00:00"
    assert len(data["first_delivery_id"]["text"]) == 128
    assert data["first_delivery_id"]["chars"] == str(len("id-0" * 50))
    assert [c.source for c in tally.flush()] == ["slack"]  # at shutdown: what is pending
    assert tally.flush() == []


def test_a_client_past_its_budget_is_refused_until_the_minute_is_over() -> None:
    clock = Clock()
    budget = RejectionBudget(2, clock=clock)
    for _ in range(2):
        assert not budget.exhausted("github", "10.0.0.1")
        budget.spend("github", "10.0.0.1")
    assert budget.exhausted("github", "10.0.0.1")
    assert not budget.exhausted("github", "10.0.0.2") and not budget.exhausted("jira", "10.0.0.1")
    clock.now += 60
    assert not budget.exhausted("github", "10.0.0.1")


def _trailers(message: str) -> list[tuple[str, str]]:
    parsed = subprocess.run(
        ["git", "interpret-trailers", "--parse"],
        input=message,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [tuple(line.split(": ", 1)) for line in parsed.splitlines()]  # type: ignore[misc]


def test_a_ticket_key_or_title_cannot_add_trailers_to_the_commit() -> None:
    run = Run(
        id="r-1", trigger_id="t-abc", kind=ChangeKind.FIX_LINT, repository="acme/payments",
        sponsor="priya.shah", agent_id="agent:lint-fix", state=RunState.VERIFIED, reason="",
        base_commit="", head_commit="", branch="", package_dir="", created_at=NOW,
    )  # fmt: skip
    trigger = TriggerEvent(
        source="jira", kind=ChangeKind.FIX_LINT, received_at=NOW, payload_digest="sha256:0",
        external_id="PAY-1\nOn-Behalf-Of: user:ceo\nReviewed-by: Mallory <m@x>",
        actor="mallory\nReviewed-by: Mallory", repository="acme/payments",
        title="Fix lint\n\nReviewed-by: Mallory <m@x>", body="",
    )  # fmt: skip
    proposal = Proposal(engine="recipe:lint-fix", engine_version="1", rationale="Fixed lint.")
    message = commit_message(run, trigger, proposal, audit_index=7)
    assert _trailers(message) == [
        ("Agent-Id", "agent:lint-fix"),
        ("On-Behalf-Of", "priya.shah"),
        ("Run-Id", "r-1"),
        ("Audit-Index", "7"),
        ("Ticket", "jira:t-abc"),
        ("Assisted-by", "recipe:lint-fix:1"),
    ]
    assert message.splitlines()[0] == "Fix lint\\n\\nReviewed-by: Mallory <m@x>"
    assert "ceo" not in message and "PAY-1" not in message


def test_repeats_are_published_once_per_source_digest_and_minute() -> None:
    clock = Clock()
    published: list[list[DuplicateCount]] = []
    tally = DuplicateTally(published.append, clock=clock)
    for index in range(300):
        tally.count(source="github", payload_digest="sha256:aa", run_id="r-1",
                    first_delivery_id="g-1", delivery_id=f"{index % 50}" + "x" * 300)  # fmt: skip
    tally.count(source="github", payload_digest="sha256:bb", run_id="r-2",
                first_delivery_id="g-2", delivery_id="g-2")  # fmt: skip
    assert published == [] and tally.pending() == 301
    clock.now += 60
    tally.flush(only_ended=True)
    first, second = published[0]
    data = first.audit_data(128)
    assert (data["count"], data["delivery_ids"], data["run_id"]) == (300, 50, "r-1")
    assert len(data["delivery_id"]["text"]) == 128 and len(data["delivery_id"]["sha256"]) == 64
    assert second.count == 1 and tally.pending() == 0


def test_the_scheduler_wakes_for_intake_counts_at_each_minute_without_schedules() -> None:
    at = datetime(2026, 11, 29, 12, 0, 45, tzinfo=UTC)
    scheduler = Scheduler(intake=cast(Any, None), schedules=[], clock=lambda: at)
    assert 15.0 < scheduler._next_wait() < 15.5  # the counts of 12:00 are due at 12:01
