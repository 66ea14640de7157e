"""The typed audit events of what an engine did: model calls, spend, tools, context, egress.

Field names and values are those of the leaves written before the events were typed.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar

from codefactory.domain import AuditEvent


@dataclass(frozen=True, kw_only=True)
class ModelCalled(AuditEvent):
    """One call through the model gateway (or one upstream attempt of it); the fields are
    those of `engines.gateway.records.ModelCall`, `outcome` as its string."""

    NAME: ClassVar[str] = "model-called"
    agent_id: str
    sponsor: str
    engine: str
    protocol: str
    method: str
    path: str
    model: str
    status: int
    attempt: int
    streamed: bool
    request_sha256: str
    response_sha256: str
    input_tokens: int
    output_tokens: int
    cost_usd: float
    """US dollars, by the run budget's price table."""
    usage_estimated: bool
    duration_s: float
    outcome: str
    error: str = ""
    upstream: str = ""
    started_at: str = ""
    count: int = 1


@dataclass(frozen=True, kw_only=True)
class EngineSpend(AuditEvent):
    """What a run's engine spent through the gateway, written when its credential closes."""

    NAME: ClassVar[str] = "engine-spend"
    engine: str
    requests: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    """US dollars."""
    estimated: bool


@dataclass(frozen=True, kw_only=True)
class ToolCalled(AuditEvent):
    """An engine's tool call, decided by policy before it ran."""

    NAME: ClassVar[str] = "tool-called"
    engine: str
    tool: str
    call: int
    arguments_sha256: str
    arguments_preview: str
    arguments_bytes: int
    allowed: bool
    policy_ids: list[str]
    reason: str


@dataclass(frozen=True, kw_only=True)
class ReadBy:
    """Who read what through a governed connector: the fields a `context-read` and a
    `context-read-failed` event share, and the two events built from them."""

    actor: str
    run_id: str
    connector: str
    operation: str
    argument: str
    data_class: str
    scope: str
    reader: str

    def read(
        self, *, items: list[str], digest: str, masked: dict[str, int], truncated: list[str]
    ) -> ContextRead:
        return ContextRead(
            **self._shared(), items=items, digest=digest, masked=masked, truncated=truncated
        )

    def failed(self, *, error: str, message: str) -> ContextReadFailed:
        return ContextReadFailed(**self._shared(), error=error, message=message)

    def _shared(self) -> dict[str, Any]:
        return {spec.name: getattr(self, spec.name) for spec in fields(self)}


@dataclass(frozen=True, kw_only=True)
class ContextRead(AuditEvent):
    """A governed connector read: what was asked, what came back, what was masked."""

    NAME: ClassVar[str] = "context-read"
    connector: str
    operation: str
    argument: str
    data_class: str
    scope: str
    reader: str
    items: list[str]
    digest: str
    masked: dict[str, int]
    """Per detector, how many values were masked."""
    truncated: list[str]


@dataclass(frozen=True, kw_only=True)
class ContextReadFailed(AuditEvent):
    """A governed connector read failed."""

    NAME: ClassVar[str] = "context-read-failed"
    connector: str
    operation: str
    argument: str
    data_class: str
    scope: str
    reader: str
    error: str
    message: str


@dataclass(frozen=True, kw_only=True)
class EgressAttempted(AuditEvent):
    """A sandboxed command tried to reach a host, allowed or not (`port` a TCP port)."""

    NAME: ClassVar[str] = "egress-attempted"
    host: str
    port: int
    phase: str
    allowed: bool
    reason: str
    method: str


@dataclass(frozen=True, kw_only=True)
class ContextSourceUnavailable(AuditEvent):
    """A context source could not be opened for the run (its settings, its index)."""

    NAME: ClassVar[str] = "context-source-unavailable"
    connector: str
    error: str
    message: str


@dataclass(frozen=True, kw_only=True)
class SandboxLimitHit(AuditEvent):
    """A sandboxed command hit a limit (time, memory, processes, output); `command` is its
    first 20 arguments, `duration_s` in seconds."""

    NAME: ClassVar[str] = "sandbox-limit-hit"
    limit: str
    phase: str
    command: list[str]
    exit_code: int
    duration_s: float


@dataclass(frozen=True, kw_only=True)
class EngineRegistryChanged(AuditEvent):
    """The engine registry differs from the last one recorded: each entry added, changed
    or removed (`engines.registry_audit.EntryChange.as_dict()`)."""

    NAME: ClassVar[str] = "engine-registry-changed"
    source: str
    digest: str
    previous_digest: str
    changes: list[dict[str, Any]]


@dataclass(frozen=True, kw_only=True)
class EngineRegistryLoaded(AuditEvent):
    """A snapshot of the whole engine registry in force (`engines.registry_audit.snapshot`):
    every entry in its canonical form, with digests."""

    NAME: ClassVar[str] = "engine-registry-loaded"
    format: int
    source: str
    digest: str
    entries: dict[str, Any]
