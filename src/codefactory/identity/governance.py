"""Governance acts need a signed statement by a person holding the act's role.

Suspending, reactivating or revoking an agent, revoking a token, rotating the issuer key,
approving a waiver, proposing or approving a policy or an engine registry, halting the
factory or lifting the halt (`codefactory halt`, role `operator`): each is a
`governance_statement` signed in the namespace `codefactory-governance` with the person's
own SSH key. `GovernanceDesk.authorize` checks it (`StatementVerifier`) and appends
`governance-authorized` (statement digest, key fingerprint, the statement itself) or
`governance-refused` (why). Both go to the audit log's `governance` ledger, which is also
what makes a statement single-use: a digest authorized once is refused afterwards.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING

from codefactory.audit.events import GovernanceAuthorized, GovernanceRefused, typed
from codefactory.audit.port import AuditLog
from codefactory.identity.directory import Directory, Role
from codefactory.identity.statements import (
    GOVERNANCE_TYPE,
    StatementRefused,
    StatementVerifier,
    VerifiedStatement,
)

if TYPE_CHECKING:
    from codefactory.config import Settings

LEDGER = "governance"
"""The audit log's key (its `run_id` column) for governance facts, which belong to no run."""
AUTHORIZED_EVENT = GovernanceAuthorized.NAME
REFUSED_EVENT = GovernanceRefused.NAME


class GovernanceAction(enum.StrEnum):
    """What a governance statement's `action` may say, each needing one role."""

    AGENT_ACTIVATE = "agent-activate"
    AGENT_SUSPEND = "agent-suspend"
    AGENT_REVOKE = "agent-revoke"
    TOKEN_REVOKE = "token-revoke"
    ISSUER_KEY_ROTATE = "issuer-key-rotate"
    FINDING_WAIVE = "finding-waive"
    POLICY_PROPOSE = "policy-propose"
    POLICY_APPROVE = "policy-approve"
    REGISTRY_PROPOSE = "registry-propose"
    REGISTRY_APPROVE = "registry-approve"
    HALT_RAISE = "halt-raise"
    HALT_LIFT = "halt-lift"

    @property
    def role(self) -> Role:
        """The role a person needs to do this."""
        if self.value.startswith("halt-"):
            return Role.OPERATOR
        if self.value.startswith("policy-"):
            return Role.POLICY_ADMIN
        if self.value.startswith("registry-"):
            return Role.REGISTRY_ADMIN
        return Role.SECURITY


def statement_verifier(settings: Settings, directory: Directory) -> StatementVerifier:
    """A verifier over `directory` with the configured statement age
    (`identity.statement_max_age_s`, default 600 s)."""
    max_age = timedelta(seconds=settings.identity.statement_max_age_s)
    return StatementVerifier(directory, max_age=max_age)


class GovernanceDesk:
    """Authorizes governance acts on signed statements; every answer is an audit event."""

    def __init__(self, *, audit: AuditLog, verifier: StatementVerifier) -> None:
        self.audit = audit
        self.verifier = verifier

    def authorize(
        self,
        body: bytes,
        signature: str,
        *,
        action: GovernanceAction,
        target: str,
        claimed: str,
        binds: Mapping[str, str] | None = None,
    ) -> VerifiedStatement:
        """The statement if `claimed` signed it for `action` on `target` (and the `binds`
        fields) and holds the role; else `StatementRefused`, after `governance-refused`."""
        expect = {"action": action.value, "target": target, **(binds or {})}
        try:
            verified = self.verifier.verify(
                body,
                signature,
                statement_type=GOVERNANCE_TYPE,
                claimed=claimed,
                role=action.role,
                expect=expect,
                used=self.used,
            )
        except StatementRefused as err:
            self._append(
                GovernanceRefused(
                    actor="unauthenticated",
                    run_id=LEDGER,
                    action=action.value,
                    target=target,
                    claimed=claimed.encode("unicode_escape").decode("ascii")[:120],
                    reason=err.reason,
                    statement_digest=err.digest,
                    key_fingerprint=err.fingerprint,
                )
            )
            raise
        self._append(
            GovernanceAuthorized(
                actor=verified.person.actor,
                run_id=LEDGER,
                action=action.value,
                target=target,
                statement_digest=verified.digest,
                key_fingerprint=verified.fingerprint,
                statement=verified.body.decode("utf-8"),
                signature=verified.signature,
                allowed_signers=verified.allowed_signers_line,
            )
        )
        return verified

    def refuse(self, verified: VerifiedStatement, *, action: GovernanceAction, reason: str) -> None:
        """Record that an authorized statement still could not take effect (`reason`)."""
        self._append(
            GovernanceRefused(
                actor=verified.person.actor,
                run_id=LEDGER,
                action=action.value,
                target=str(verified.fields.get("target", "")),
                reason=reason,
                statement_digest=verified.digest,
                key_fingerprint=verified.fingerprint,
            )
        )

    def used(self, digest: str) -> bool:
        """Whether a statement with this digest authorized an act before."""
        return any(
            isinstance(event, GovernanceAuthorized) and event.statement_digest == digest
            for event in map(typed, self.audit.events(LEDGER))
        )

    def _append(self, event: GovernanceAuthorized | GovernanceRefused) -> None:
        self.audit.append(event)
