"""What a run gives its engine: how to reach the model, its budget, and the tool gate.

Recipes ignore the session; language-model engines (the in-harness agent, agent CLIs) reach
their model only through the model gateway named here, with the run's short-lived credential,
and ask the tool gate before every tool call they execute in the harness.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True, kw_only=True)
class Price:
    """A model's price in US dollars per million tokens (the engine registry's table)."""

    input_per_mtok: float = 0.0
    output_per_mtok: float = 0.0

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """Dollars for that many tokens."""
        return (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1e6


@dataclass(frozen=True, kw_only=True)
class Budget:
    """The most a run may spend on its model; 0 means no allowance at all for that measure,
    None means not capped. The gateway enforces it for every engine; the in-harness agent
    enforces it again in its own process (pydantic-ai `UsageLimits`)."""

    requests: int | None = 50
    input_tokens: int | None = 2_000_000
    output_tokens: int | None = 200_000
    cost_usd: float | None = 5.0
    wall_s: float | None = 900.0
    prices: Mapping[str, Price] = field(default_factory=dict)
    """Model id → price; a model missing here costs nothing by the table (the registry
    validator warns about it)."""


@dataclass(frozen=True, kw_only=True)
class Spend:
    """What a run has used so far, as the gateway counted it."""

    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    estimated: bool = False
    """True when some response carried no usage block and its tokens were estimated."""


@dataclass(frozen=True, kw_only=True)
class ModelAccess:
    """How an engine reaches its model for one run: the gateway, never the provider."""

    base_url: str
    """`https://<gateway host>:<port>` without a path; OpenAI clients append `/v1`."""
    egress_host: str
    """`<gateway host>:<port>`: the one entry of the engine phase's egress allow-list."""
    credential: str
    """The run's short-lived key; sent as `Authorization: Bearer` or `x-api-key`."""
    ca_file: Path
    """PEM file of the factory CA that signed the gateway's certificate."""
    model: str
    """The model id the engine registry cleared for this engine."""
    protocol: str = "openai-chat"
    """`openai-chat`, `openai-responses` or `anthropic-messages`."""
    egress_address: str = ""
    """`<bind>:<port>` of the gateway's loopback listener (`ModelGateway.resolve_entry`), so
    the sandbox egress proxy can map `egress_host` to it for an engine running inside the
    sandbox; empty when the phase's egress settings already map it."""
    local_base_url: str = ""
    """The same listener by its loopback address, for engines in the factory process (the
    harness host name resolves only through the sandbox's egress proxy); empty: `base_url`."""

    @property
    def in_process_url(self) -> str:
        """The base URL for an engine running in the factory process."""
        return self.local_base_url or self.base_url


class ToolRefused(Exception):
    """Policy refused a tool call; the engine gets the reason as the tool's answer."""


class ToolGate(Protocol):
    """Asked before every tool call an engine executes in the harness: policy decides (Cedar
    `Action::"tool-call"` with the tool name and arguments as context), the audit log records
    the call; raises `ToolRefused` when it may not run."""

    def __call__(self, tool: str, arguments: Mapping[str, Any]) -> None: ...


def allow_every_tool(tool: str, arguments: Mapping[str, Any]) -> None:
    """A gate for recipes and unit tests: records nothing, refuses nothing."""


EvidenceSink = Callable[[str, bytes], Path]
"""Stores a named evidence file of the run (an event stream, a trajectory); returns its path."""


@dataclass(frozen=True, kw_only=True)
class EngineSession:
    """One run's engine context, for one round."""

    run_id: str
    round: int = 1
    model: ModelAccess | None = None
    """None for recipes, which reach no model."""
    budget: Budget = field(default_factory=Budget)
    tools: ToolGate = allow_every_tool
    evidence: EvidenceSink | None = None
    allowed_tools: tuple[str, ...] = ()
    """The registry's tool allow-list for this engine; empty: every tool it has."""
    context_tools: bool = False
    """The run's context engine is served over MCP on the gateway's listener, at `/mcp`
    (`model.base_url + "/mcp"` from the sandbox, `model.in_process_url + "/mcp"` in the
    factory process), to the same credential (docs/context.md)."""
    mask: Callable[[str], str] | None = None
    """The run's masker (same pseudonyms as the task): an in-harness engine masks what its
    tools return before the model reads it; None: nothing to mask with."""
    unmask: Callable[[str], str] | None = None
    """The inverse, for the host only: placeholders in a tool's arguments back to the values
    they stand for, so an edit the model writes with `<EMAIL_ADDRESS_1>` writes the file's
    real text."""
