"""The run's budget enforced in the agent's own process (the gateway enforces it again).

Requests and tokens become pydantic-ai `UsageLimits`, checked before each request and after
each response; cost is checked after each response against the registry's price for the
model, since pydantic-ai knows no price for a model behind our gateway.
"""

from __future__ import annotations

from pydantic_ai.usage import RunUsage, UsageLimits

from codefactory.engines.agent.errors import BudgetExhausted
from codefactory.engines.session import Budget


def usage_limits(budget: Budget, *, tool_calls: int | None = None) -> UsageLimits:
    """`UsageLimits` for `budget`: a `None` measure is not capped, 0 allows nothing;
    `tool_calls` caps the tool calls of one round."""
    return UsageLimits(
        request_limit=budget.requests,
        input_tokens_limit=budget.input_tokens,
        output_tokens_limit=budget.output_tokens,
        tool_calls_limit=tool_calls,
    )


def spent_usd(budget: Budget, model: str, usage: RunUsage) -> float:
    """Dollars `usage` costs at the budget's price for `model` (0 when it has none)."""
    price = budget.prices.get(model)
    return price.cost(usage.input_tokens, usage.output_tokens) if price else 0.0


def check_cost(budget: Budget, model: str, usage: RunUsage) -> None:
    """Raise `BudgetExhausted("cost_usd", ...)` once `usage` costs more than the budget."""
    if budget.cost_usd is None:
        return
    cost = spent_usd(budget, model, usage)
    if cost > budget.cost_usd:
        raise BudgetExhausted("cost_usd", f"spent ${cost:.4f} of ${budget.cost_usd:.4f}")
