"""The typed audit events of identity: delegation tokens (RFC 8693) issued, checked,
refused and revoked.

Field names and values are those of the leaves written before the events were typed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from codefactory.domain import AuditEvent


@dataclass(frozen=True, kw_only=True)
class DelegationIssued(AuditEvent):
    """The issuer signed a run's delegation token (`claims` as signed, the token by its
    SHA-256 only)."""

    NAME: ClassVar[str] = "delegation-issued"
    jti: str
    kid: str
    claims: dict[str, Any]
    token_sha256: str


@dataclass(frozen=True, kw_only=True)
class DelegationChecked(AuditEvent):
    """The run's token allowed an act (`action`) on `paths`."""

    NAME: ClassVar[str] = "delegation-checked"
    jti: str
    action: str
    paths: list[str]


@dataclass(frozen=True, kw_only=True)
class DelegationRefused(AuditEvent):
    """The run's token did not allow an act; `reason` says why."""

    NAME: ClassVar[str] = "delegation-refused"
    jti: str
    action: str
    paths: list[str]
    reason: str


@dataclass(frozen=True, kw_only=True)
class DelegationRevoked(AuditEvent):
    """A run's token was revoked; checks refuse it from then on."""

    NAME: ClassVar[str] = "delegation-revoked"
    jti: str
    reason: str
