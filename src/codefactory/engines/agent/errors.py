"""Why an in-harness agent run ended without a proposal.

EngineError (codefactory.engines.errors)
 └── AgentFailed            base: `reason` names the cause for the run's record
      ├── BudgetExhausted   a budget measure was spent (in the process, or the gateway's 429)
      ├── ModelUnavailable  the model endpoint failed: 5xx after retries, refused, unreachable
      ├── ModelMisbehaved   the model's answers broke the protocol (malformed tool calls, ...)
      ├── NoFinish          the model stopped without calling `finish`
      └── StepCapReached    the agent made its most model requests without finishing
"""

from __future__ import annotations

from codefactory.engines.errors import EngineError


class AgentFailed(EngineError):
    """The agent ended without a proposal; `reason` is a stable kebab-case name."""

    reason = "agent-failed"

    def __init__(self, message: str) -> None:
        super().__init__(f"agent:pydantic-ai {self.reason}: {message}")
        self.detail = message


class BudgetExhausted(AgentFailed):
    """A budget measure (`requests`, `input_tokens`, `output_tokens`, `tool_calls`,
    `cost_usd`, `wall_s`, or `gateway` when the gateway answered 429) was spent."""

    reason = "budget-exhausted"

    def __init__(self, measure: str, message: str) -> None:
        super().__init__(f"{measure}: {message}")
        self.measure = measure


class ModelUnavailable(AgentFailed):
    """The model endpoint answered with an error or could not be reached."""

    reason = "model-unavailable"

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message if status is None else f"HTTP {status}: {message}")
        self.status = status


class ModelMisbehaved(AgentFailed):
    """The model's answers could not be used (malformed tool calls past their retries,
    an empty answer, a broken response body)."""

    reason = "model-misbehaved"


class NoFinish(AgentFailed):
    """The model answered with text and no tool call, without having called `finish`."""

    reason = "no-finish"


class StepCapReached(AgentFailed):
    """The agent reached its cap on model requests for one round without finishing."""

    reason = "step-cap"

    def __init__(self, steps: int) -> None:
        super().__init__(f"{steps} model requests without a call to finish")
        self.steps = steps
