"""The agent's pure parts: workspace paths, diff headers, output caps, the allow-list,
budget limits and how failures are named."""

from __future__ import annotations

import pytest
from pydantic_ai import ToolFailed
from pydantic_ai.exceptions import (
    ModelAPIError,
    ModelHTTPError,
    UnexpectedModelBehavior,
    UsageLimitExceeded,
)
from pydantic_ai.usage import RunUsage

from codefactory.engines.agent import BudgetExhausted, ModelMisbehaved, ModelUnavailable
from codefactory.engines.agent.budget import check_cost, usage_limits
from codefactory.engines.agent.failures import classify
from codefactory.engines.agent.tools import build_toolset, cap_output, workspace_path
from codefactory.engines.patches import patch_paths
from codefactory.engines.session import Budget, Price


@pytest.mark.parametrize(
    ("given", "expected"), [("src/app.py", "src/app.py"), ("./a//b.py", "a/b.py"), ("a/./b", "a/b")]
)
def test_workspace_paths_are_normalised(given: str, expected: str) -> None:
    assert workspace_path(given) == expected


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("/etc/passwd", "give a path relative to the workspace root"),
        ("~/x", "give a path relative to the workspace root"),
        ("", "give a path relative to the workspace root"),
        ("a/../../b", "'..' would leave the workspace"),
        ("..", "'..' would leave the workspace"),
        (".", "names the workspace root, not a file"),
    ],
)
def test_paths_leaving_the_workspace_are_refused(given: str, message: str) -> None:
    with pytest.raises(ToolFailed, match=message):
        workspace_path(given)


def test_the_root_is_a_folder_for_listing() -> None:
    assert workspace_path(".", allow_root=True) == "."


def test_patch_paths_strip_prefixes_and_dev_null() -> None:
    patch = "--- /dev/null\n+++ b/new.py\t2024-01-01\n--- a/src/x.py\n+++ b/src/x.py\n"
    assert patch_paths(patch) == ["new.py", "src/x.py"]


def test_cap_output_keeps_head_and_tail() -> None:
    assert cap_output("short", 10) == "short"
    capped = cap_output("a" * 50 + "b" * 50, 20)
    assert capped == "a" * 10 + "\n[... 80 characters cut ...]\n" + "b" * 10


def test_allow_list_with_unknown_tool_or_without_finish_is_refused() -> None:
    with pytest.raises(ValueError, match=r"does not have: \['Bash', 'WebFetch'\]"):
        build_toolset(["read_file", "Bash", "WebFetch", "finish"])
    with pytest.raises(ValueError, match="leaves out finish"):
        build_toolset(["read_file"])
    assert set(build_toolset(["finish", "run"]).tools) == {"run", "finish"}
    assert len(build_toolset().tools) == 7


def test_usage_limits_follow_the_budget() -> None:
    limits = usage_limits(Budget(requests=3, input_tokens=None, output_tokens=0), tool_calls=9)
    assert (limits.request_limit, limits.input_tokens_limit) == (3, None)
    assert (limits.output_tokens_limit, limits.tool_calls_limit) == (0, 9)


def test_cost_is_checked_with_the_registry_price() -> None:
    budget = Budget(cost_usd=1.0, prices={"m": Price(input_per_mtok=2.0, output_per_mtok=10.0)})
    check_cost(budget, "m", RunUsage(input_tokens=400_000, output_tokens=20_000))  # $1.00
    with pytest.raises(BudgetExhausted, match=r"cost_usd: spent \$1.0020 of \$1.0000"):
        check_cost(budget, "m", RunUsage(input_tokens=401_000, output_tokens=20_000))
    check_cost(budget, "unpriced", RunUsage(input_tokens=10**9))


@pytest.mark.parametrize(
    ("error", "kind", "reason"),
    [
        (
            UsageLimitExceeded("The next request would exceed the request_limit of 3"),
            BudgetExhausted,
            "budget-exhausted: requests: The next request would exceed the request_limit of 3",
        ),
        (
            UsageLimitExceeded("Exceeded the output_tokens_limit of 10 (output_tokens=12)"),
            BudgetExhausted,
            "budget-exhausted: output_tokens: Exceeded the output_tokens_limit of 10",
        ),
        (
            ModelHTTPError(429, "m", {"error": {"message": "run budget spent: requests 2/2"}}),
            BudgetExhausted,
            "budget-exhausted: gateway: {'error': {'message': 'run budget spent",
        ),
        (
            ModelHTTPError(429, "m", {"error": {"message": "slow down"}}),
            ModelUnavailable,
            "model-unavailable: HTTP 429: rate limited after retries",
        ),
        (ModelHTTPError(503, "m", "down"), ModelUnavailable, "model-unavailable: HTTP 503: down"),
        (ModelAPIError("m", "connection refused"), ModelUnavailable, "connection refused"),
        (UnexpectedModelBehavior("bad tool call JSON"), ModelMisbehaved, "bad tool call JSON"),
        (TimeoutError(), BudgetExhausted, "wall_s: the round ran out of wall-clock time"),
    ],
)
def test_failures_get_named_reasons(error: Exception, kind: type, reason: str) -> None:
    failure = classify(error)
    assert isinstance(failure, kind)
    assert reason in str(failure)


def test_other_exceptions_are_not_renamed() -> None:
    assert classify(KeyError("bug")) is None
