"""`agent:pydantic-ai`: the in-harness coding agent, a pydantic-ai tool-calling loop.

One `propose` is one round: the agent reads the ticket (and the previous round's failed
checks), works in the sandbox workspace through its gated tools, and ends when the model
calls `finish`. The model is reached only through the run's gateway (`session.model`); the
run's budget is enforced in this process too. The full message history of the round is kept
as evidence, whether the round ended with a proposal or a failure.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pydantic_ai
from pydantic_ai import Agent
from pydantic_ai.exceptions import UsageLimitUnavailableWarning
from pydantic_ai.messages import ModelMessage, ModelMessagesTypeAdapter
from pydantic_ai.models import Model
from pydantic_ai.usage import RunUsage

from codefactory.domain import CheckResult, Proposal, Task
from codefactory.engines.agent.budget import check_cost, spent_usd, usage_limits
from codefactory.engines.agent.context import context_toolsets
from codefactory.engines.agent.errors import AgentFailed, NoFinish, StepCapReached
from codefactory.engines.agent.failures import classify
from codefactory.engines.agent.gate import GatedToolset
from codefactory.engines.agent.model import gateway_model
from codefactory.engines.agent.prompt import (
    INSTRUCTIONS,
    PromptLimits,
    build_prompt,
    repository_instructions,
)
from codefactory.engines.agent.tools import AgentDeps, ToolLimits, build_toolset
from codefactory.engines.errors import EngineError
from codefactory.engines.session import EngineSession
from codefactory.sandbox.port import Workspace

NAME = "agent:pydantic-ai"


@dataclass(frozen=True, kw_only=True)
class AgentSettings:
    """The agent's own caps for one round, below the run's budget."""

    max_steps: int = 40
    """Model requests per round; more ends the round with `StepCapReached`."""
    max_tool_calls: int | None = 200
    """Tool calls per round (pydantic-ai `tool_calls_limit`); more is `BudgetExhausted`."""
    tool_retries: int = 3
    """Malformed calls of one tool the model may correct before the round fails."""
    sdk_retries: int = 1
    """Retries of the OpenAI/Anthropic SDK; the gateway retries upstream faults itself."""
    request_timeout_s: float = 300.0
    tools: ToolLimits = field(default_factory=ToolLimits)
    prompt: PromptLimits = field(default_factory=PromptLimits)


class PydanticAIAgent:
    """The in-harness agent engine (`Engine` port), registry name `agent:pydantic-ai`."""

    name = NAME
    version = pydantic_ai.__version__

    def __init__(self, settings: AgentSettings | None = None, *, model: Model | None = None):
        """`model` replaces the gateway's model for every round: tests pass pydantic-ai's
        `FunctionModel` here; production leaves it None and uses `session.model`."""
        self.settings = settings or AgentSettings()
        self._model_override = model

    def propose(
        self,
        task: Task,
        workspace: Workspace,
        feedback: Sequence[CheckResult],
        session: EngineSession | None = None,
    ) -> Proposal:
        """Run one round of the agent over `workspace`; the `finish` summary becomes the
        rationale. Raises `EngineError` without model access or with a bad allow-list, and an
        `AgentFailed` subclass (`BudgetExhausted`, `ModelUnavailable`, `ModelMisbehaved`,
        `NoFinish`, `StepCapReached`) when the round ends without `finish`. Must not be called
        from a running event loop."""
        session = session or EngineSession(run_id=workspace.run_id)
        if session.model is None and self._model_override is None:
            raise EngineError(f"no model access for {NAME}")
        try:
            toolset = build_toolset(session.allowed_tools)
        except ValueError as exc:
            raise EngineError(f"{NAME}: {exc}") from exc
        round_ = _Round(
            task=task,
            workspace=workspace,
            feedback=tuple(feedback),
            session=session,
            toolset=GatedToolset(
                toolset, gate=session.tools, mask=session.mask, unmask=session.unmask
            ),
        )
        return asyncio.run(self._propose(round_))

    async def _propose(self, round_: _Round) -> Proposal:
        prompt = build_prompt(
            round_.task,
            instructions=repository_instructions(round_.workspace, self.settings.prompt),
            feedback=round_.feedback,
            limits=self.settings.prompt,
        )
        async with self._model(round_.session) as model:
            model_id = model.model_name
            agent = Agent(
                model,
                instructions=INSTRUCTIONS,
                deps_type=AgentDeps,
                toolsets=[round_.toolset, *context_toolsets(round_.session)],
                retries=self.settings.tool_retries,
                name="codefactory-agent",
            )
            deps = AgentDeps(workspace=round_.workspace, limits=self.settings.tools)
            try:
                usage = await self._drive(agent, prompt, deps, round_, model_id)
            except AgentFailed:
                raise
            except Exception as exc:
                failure = classify(exc)
                if failure is None:
                    raise
                raise failure from exc
            finally:
                _keep_evidence(round_)
        return self._proposal(round_, deps, usage, model_id)

    async def _drive(
        self,
        agent: Agent[AgentDeps, str],
        prompt: str,
        deps: AgentDeps,
        round_: _Round,
        model_id: str,
    ) -> RunUsage:
        budget = round_.session.budget
        limits = usage_limits(budget, tool_calls=self.settings.max_tool_calls)
        steps = 0
        with warnings.catch_warnings():
            # a response without usage is counted in `unmeasured_requests` and reported
            warnings.simplefilter("ignore", UsageLimitUnavailableWarning)
            async with (
                asyncio.timeout(budget.wall_s),
                agent.iter(prompt, deps=deps, usage_limits=limits) as run,
            ):
                try:
                    async for node in run:
                        check_cost(budget, model_id, run.usage)
                        if deps.summary is not None:
                            if Agent.is_model_request_node(node):
                                round_.pending = node.request  # finish's own answer
                            break
                        if Agent.is_model_request_node(node):
                            steps += 1
                            if steps > self.settings.max_steps:
                                raise StepCapReached(self.settings.max_steps)
                finally:
                    round_.transcript = run.all_messages()
                if deps.summary is None:
                    text = run.result.output if run.result is not None else ""
                    raise NoFinish(f"the model answered without calling finish: {text[:300]!r}")
                return run.usage

    def _proposal(
        self, round_: _Round, deps: AgentDeps, usage: RunUsage, model_id: str
    ) -> Proposal:
        toolset = round_.toolset
        return Proposal(
            engine=NAME,
            engine_version=f"{self.version}+{model_id}",
            rationale=deps.summary or "",
            details={
                "model": model_id,
                "round": round_.session.round,
                "requests": usage.requests,
                "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
                "unmeasured_requests": usage.unmeasured_requests,
                "cost_usd": spent_usd(round_.session.budget, model_id, usage),
                "tool_calls": dict(sorted(toolset.calls.items())),
                "refused": dict(sorted(toolset.refused.items())),
            },
        )

    @asynccontextmanager
    async def _model(self, session: EngineSession) -> AsyncIterator[Model]:
        if self._model_override is not None:
            yield self._model_override
            return
        assert session.model is not None  # propose checked
        async with gateway_model(
            session.model,
            max_retries=self.settings.sdk_retries,
            timeout_s=self.settings.request_timeout_s,
        ) as model:
            yield model


@dataclass(kw_only=True)
class _Round:
    task: Task
    workspace: Workspace
    feedback: tuple[CheckResult, ...]
    session: EngineSession
    toolset: GatedToolset
    transcript: list[ModelMessage] = field(default_factory=list)
    pending: ModelMessage | None = None


def _keep_evidence(round_: _Round) -> None:
    """Store the round's messages as `agent-messages-round-<n>.json` (pydantic-ai's format)."""
    sink = round_.session.evidence
    if sink is None:
        return
    messages = [*round_.transcript, *([round_.pending] if round_.pending else [])]
    sink(
        f"agent-messages-round-{round_.session.round}.json",
        ModelMessagesTypeAdapter.dump_json(messages, indent=2),
    )
