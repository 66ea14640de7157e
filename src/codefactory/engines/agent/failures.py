"""How a failed agent run is named: each exception pydantic-ai or the SDKs raise becomes one
`AgentFailed` subclass with a stable reason."""

from __future__ import annotations

import re

from pydantic_ai.exceptions import (
    ModelAPIError,
    ModelHTTPError,
    UnexpectedModelBehavior,
    UsageLimitExceeded,
)

from codefactory.engines.agent.errors import (
    AgentFailed,
    BudgetExhausted,
    ModelMisbehaved,
    ModelUnavailable,
)

_MEASURES = {
    "request": "requests",
    "input_tokens": "input_tokens",
    "output_tokens": "output_tokens",
    "total_tokens": "total_tokens",
    "tool_calls": "tool_calls",
    "cost": "cost_usd",
}


def classify(exc: BaseException) -> AgentFailed | None:
    """The named failure for `exc`, or None when it is not a model or budget failure
    (a bug, which the caller lets surface as itself)."""
    if isinstance(exc, UsageLimitExceeded):
        return BudgetExhausted(_measure(str(exc)), str(exc).split(". Consider", 1)[0])
    if isinstance(exc, ModelHTTPError):
        return _http(exc)
    if isinstance(exc, ModelAPIError):
        return ModelUnavailable(str(exc))
    if isinstance(exc, UnexpectedModelBehavior):
        return ModelMisbehaved(exc.message)
    if isinstance(exc, TimeoutError):
        return BudgetExhausted("wall_s", "the round ran out of wall-clock time")
    return None


def _http(exc: ModelHTTPError) -> AgentFailed:
    body = str(exc.body)[:500] if exc.body is not None else ""
    if exc.status_code == 429:
        # the gateway answers 429 once the run's budget is spent, as a provider does for quota
        if "budget" in body.lower():
            return BudgetExhausted("gateway", body)
        return ModelUnavailable(f"rate limited after retries: {body}", status=429)
    return ModelUnavailable(body or exc.message, status=exc.status_code)


def _measure(message: str) -> str:
    found = re.search(r"`?(\w+?)_limit`?", message)
    return _MEASURES.get(found.group(1), found.group(1)) if found else "usage"
