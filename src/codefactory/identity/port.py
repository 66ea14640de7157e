"""The identity ports: the issuer's keys, the agents a run may act as, the run's delegation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from codefactory.domain import Run
from codefactory.identity.agents import AgentIdentity

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

CAUSED_BY_CLAIM = "codefactory:caused_by"
"""The delegation token's claim naming the person who caused the trigger."""
REQUESTED_BY_CLAIM = "codefactory:requested_by"
"""The delegation token's claim naming who requested the run (the trigger's actor)."""


@dataclass(frozen=True, kw_only=True)
class IssuerKey:
    """One public key of the issuer; `kid` is its RFC 7638 thumbprint."""

    kid: str
    public_key: bytes
    created_at: str
    retired_at: str | None = None


@dataclass(frozen=True, kw_only=True)
class IssuerSignature:
    """A signature and the key that made it."""

    kid: str
    public_key: bytes
    signature: bytes


class Issuer(Protocol):
    """The factory as an issuer: an Ed25519 signing key that rotates, behind a `Signer`
    (an HSM token through PKCS#11, or key files in development mode)."""

    name: str
    """The `iss` of every token and the issuer of every agent."""

    def sign(self, message: bytes) -> IssuerSignature:
        """Sign with the current key."""
        ...

    def public_keys(self) -> list[IssuerKey]:
        """Every key ever used, current first: retired keys stay published."""
        ...

    def rotate(self) -> IssuerKey:
        """Start signing with a new key."""
        ...


class CheckpointIssuer(Issuer, Protocol):
    """An issuer that also signs the audit log's checkpoints (C2SP signed notes)."""

    def note_signer(self, message: bytes) -> tuple[bytes, bytes]:
        """Sign a checkpoint: (public key, signature) of the current key."""
        ...

    def raw_public_keys(self) -> list[bytes]:
        """Raw Ed25519 keys that verify checkpoints (pinned ones when a trust file is set)."""
        ...


class AgentDirectory(Protocol):
    """Registered non-human identities."""

    def require_active(self, agent_id: str) -> AgentIdentity:
        """The agent, if it may act; raises `AgentUnavailable` otherwise."""
        ...


@dataclass(frozen=True, kw_only=True)
class DelegationToken:
    """A run's delegation token as issued: the compact JWT and its decoded claims."""

    jti: str
    token: str
    claims: dict[str, Any]


class Delegation(Protocol):
    """Delegation tokens: issued when a run is authorized, checked by whoever acts for it."""

    def issue(self, run: Run, agent: AgentIdentity, *, session: Session) -> DelegationToken:
        """Issue the run's token inside `session`'s transaction (with its audit event)."""
        ...

    def check(
        self, run: Run, *, action: str, paths: Sequence[str] = (), at: datetime | None = None
    ) -> dict[str, Any]:
        """The token's claims if it allows `action` on `paths` (at time `at`, default now);
        audits the check and raises `DelegationRefused` otherwise."""
        ...
