"""The typed audit events of operating the factory: the organisation-wide halt, the daily
cost caps, replays and the MCP endpoint.

Field names and values are those of the leaves written before the events were typed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from codefactory.domain import AuditEvent


@dataclass(frozen=True, kw_only=True)
class HaltRaised(AuditEvent):
    """The factory was halted by a signed statement (`codefactory halt --reason`)."""

    NAME: ClassVar[str] = "halt-raised"
    halt_id: int
    reason: str
    statement_digest: str


@dataclass(frozen=True, kw_only=True)
class HaltLifted(AuditEvent):
    """The halt was lifted by a signed statement; `halted_for` is the halt's own reason."""

    NAME: ClassVar[str] = "halt-lifted"
    halt_id: int
    reason: str
    halted_for: str
    statement_digest: str


@dataclass(frozen=True, kw_only=True)
class HaltRefused(AuditEvent):
    """An attempt to raise or lift the halt was refused (`claimed`: the person typed)."""

    NAME: ClassVar[str] = "halt-refused"
    action: str
    claimed: str
    reason: str
    statement_digest: str


@dataclass(frozen=True, kw_only=True)
class CostCapReached(AuditEvent):
    """A daily cost cap refused an engine round; spend in micro-dollars on `day` (UTC)."""

    NAME: ClassVar[str] = "cost-cap-reached"
    repository: str
    engine: str
    round: int
    day: str
    spend_today_microusd_repository: int
    spend_today_microusd_organisation: int
    policy_ids: list[str]
    reasons: list[str]
    errors: list[str]


@dataclass(frozen=True, kw_only=True)
class RunReplayStarted(AuditEvent):
    """`runs replay` started a rehearsal of the `original` run."""

    NAME: ClassVar[str] = "run-replay-started"
    original: str


@dataclass(frozen=True, kw_only=True)
class RunReplayed(AuditEvent):
    """A rehearsal ended: whether it made the same diff and check verdicts (`error` why it
    stopped, empty when it ran through)."""

    NAME: ClassVar[str] = "run-replayed"
    original: str
    same_diff: bool
    same_checks: bool
    error: str


@dataclass(frozen=True, kw_only=True)
class McpServeStarted(AuditEvent):
    """`codefactory mcp serve` began serving a run's context (`address` empty on stdio)."""

    NAME: ClassVar[str] = "mcp-serve-started"
    transport: str
    address: str
    engine: str


@dataclass(frozen=True, kw_only=True)
class WitnessFailed(AuditEvent):
    """A witness did not cosign the checkpoint of `size` leaves (`status` its HTTP status,
    0 when none; `kind` what went wrong)."""

    NAME: ClassVar[str] = "witness-failed"
    witness: str
    url: str
    size: int
    root_hash: str
    kind: str
    status: int
    reason: str


@dataclass(frozen=True, kw_only=True)
class IssuerKeyRotated(AuditEvent):
    """The issuer's signing key was rotated under a signed governance statement."""

    NAME: ClassVar[str] = "issuer-key-rotated"
    issuer: str
    kid: str
    retired: str
    statement_digest: str


@dataclass(frozen=True, kw_only=True)
class SignerUnavailable(AuditEvent):
    """The issuer's signer could not be used at start (an HSM down, another key): the
    factory fails closed."""

    NAME: ClassVar[str] = "signer-unavailable"
    setting: str
    error: str
