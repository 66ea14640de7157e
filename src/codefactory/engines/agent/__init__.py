"""The in-harness coding agent `agent:pydantic-ai`: its engine, settings and failures."""

from __future__ import annotations

from typing import TYPE_CHECKING

from codefactory.lazy import lazy_exports

if TYPE_CHECKING:
    from codefactory.engines.agent.engine import NAME, AgentSettings, PydanticAIAgent
    from codefactory.engines.agent.errors import (
        AgentFailed,
        BudgetExhausted,
        ModelMisbehaved,
        ModelUnavailable,
        NoFinish,
        StepCapReached,
    )

__all__ = [
    "NAME",
    "AgentFailed",
    "AgentSettings",
    "BudgetExhausted",
    "ModelMisbehaved",
    "ModelUnavailable",
    "NoFinish",
    "PydanticAIAgent",
    "StepCapReached",
]

__getattr__ = lazy_exports(
    __name__,
    globals(),
    {
        "NAME": "codefactory.engines.agent.engine",
        "AgentSettings": "codefactory.engines.agent.engine",
        "PydanticAIAgent": "codefactory.engines.agent.engine",
        "AgentFailed": "codefactory.engines.agent.errors",
        "BudgetExhausted": "codefactory.engines.agent.errors",
        "ModelMisbehaved": "codefactory.engines.agent.errors",
        "ModelUnavailable": "codefactory.engines.agent.errors",
        "NoFinish": "codefactory.engines.agent.errors",
        "StepCapReached": "codefactory.engines.agent.errors",
    },
)
