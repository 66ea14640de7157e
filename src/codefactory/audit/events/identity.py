"""The typed audit events of identity: delegation tokens (RFC 8693) issued, checked,
refused and revoked.

Field names and values are those of the leaves written before the events were typed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from codefactory.domain import AuditEvent, omitted_when_none


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


@dataclass(frozen=True, kw_only=True)
class GovernanceAuthorized(AuditEvent):
    """A governance act (`action` on `target`) was authorized by a person's signed
    statement, kept whole so an examiner can verify it again."""

    NAME: ClassVar[str] = "governance-authorized"
    action: str
    target: str
    statement_digest: str
    key_fingerprint: str
    statement: str
    signature: str
    allowed_signers: str


@dataclass(frozen=True, kw_only=True)
class GovernanceRefused(AuditEvent):
    """A governance act was refused. A statement that did not verify names the `claimed`
    person, its digest and key; an authorized one that could not take effect names its
    digest and key; a waiver not applied names the `claimed` approver and the `waiver`
    digest (each field absent where it was before)."""

    NAME: ClassVar[str] = "governance-refused"
    action: str
    target: str
    reason: str
    claimed: str | None = omitted_when_none()
    waiver: str | None = omitted_when_none()
    statement_digest: str | None = omitted_when_none()
    key_fingerprint: str | None = omitted_when_none()


@dataclass(frozen=True, kw_only=True)
class Login(AuditEvent):
    """A person authenticated through the identity provider (`method`: `browser` or
    `bearer`; `token`: the bearer token's digest, present for a bearer token only)."""

    NAME: ClassVar[str] = "login"
    subject: str
    method: str
    token: str | None = omitted_when_none()


@dataclass(frozen=True, kw_only=True)
class LoginRefused(AuditEvent):
    """Refused logins or tokens from one source for one reason in one minute, counted
    (`window_start` ISO 8601); the first of a minute carries its `detail` and the facts its
    caller gave (`error`, `state`, `subject`, `token`), each present only when given."""

    NAME: ClassVar[str] = "login-refused"
    source: str
    reason: str
    count: int
    window_start: str
    detail: str | None = omitted_when_none()
    error: str | None = omitted_when_none()
    state: str | None = omitted_when_none()
    subject: str | None = omitted_when_none()
    token: str | None = omitted_when_none()
