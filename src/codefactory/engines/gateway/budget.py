"""A run's budget against its spend: which measure, if any, is used up.

A cap of 0 allows nothing and None caps nothing (`Budget`'s contract); a measure is spent
once its use reaches its cap, so the call that would go past it is the one refused.
"""

from __future__ import annotations

from dataclasses import replace

from codefactory.engines.gateway.usage import Usage
from codefactory.engines.session import Budget, Spend


def spent_measure(budget: Budget, spend: Spend) -> str | None:
    """`"output_tokens 200000/200000"` for the first measure used up, or None while every
    measure has room. Checked in the order requests, input, output tokens, cost."""
    measures: list[tuple[str, float, float | None]] = [
        ("requests", spend.requests, budget.requests),
        ("input_tokens", spend.input_tokens, budget.input_tokens),
        ("output_tokens", spend.output_tokens, budget.output_tokens),
        ("cost_usd", spend.cost_usd, budget.cost_usd),
    ]
    for name, used, cap in measures:
        if cap is not None and used >= cap:
            if name == "cost_usd":
                return f"{name} {used:.4f}/{cap:.4f}"
            return f"{name} {used:g}/{cap:g}"
    return None


def price_of(budget: Budget, model: str, usage: Usage) -> float:
    """Dollars for `usage` of `model` by the budget's price table (0 for a model not in it)."""
    price = budget.prices.get(model)
    return price.cost(usage.input_tokens, usage.output_tokens) if price else 0.0


def add_usage(spend: Spend, usage: Usage, cost_usd: float, *, estimated: bool) -> Spend:
    """`spend` plus one response's tokens and cost (its request was counted when reserved)."""
    return replace(
        spend,
        input_tokens=spend.input_tokens + usage.input_tokens,
        output_tokens=spend.output_tokens + usage.output_tokens,
        cost_usd=spend.cost_usd + cost_usd,
        estimated=spend.estimated or estimated,
    )
