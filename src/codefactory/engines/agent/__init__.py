"""The in-harness coding agent `agent:pydantic-ai`: its engine, settings and failures."""

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
