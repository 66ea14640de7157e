"""Only waivers a security officer signed lift a finding.

A waiver in the settings (`verify.waivers`) carries `signed_at` and `signature`: its
approver's SSH signature (namespace `codefactory-governance`) over the governance statement
`waiver_statement` builds from the waiver's own fields (action `finding-waive`). The factory
keeps the waivers whose signature verifies for a directory person with the `security` role
and drops the others, each drop a `governance-refused` event (once per waiver and reason).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from codefactory.audit.events import GovernanceRefused, typed
from codefactory.audit.port import AuditLog
from codefactory.identity.directory import Role
from codefactory.identity.errors import IdentityError
from codefactory.identity.governance import LEDGER, GovernanceAction
from codefactory.identity.statements import (
    GOVERNANCE_TYPE,
    StatementRefused,
    StatementVerifier,
    governance_statement,
    statement_digest,
)
from codefactory.verify.settings import VerifySettings, Waiver

if TYPE_CHECKING:
    from codefactory.config import Settings
    from codefactory.identity.directory import Directory

ACTION = GovernanceAction.FINDING_WAIVE


def waiver_target(waiver: Waiver) -> str:
    """What a waiver lifts: `check:rule`."""
    return f"{waiver.check}:{waiver.rule}"


def waiver_statement(waiver: Waiver, *, at: datetime | None = None) -> bytes:
    """The governance statement the approver signs for `waiver` (at `at`, else its
    `signed_at`); `ValueError` when neither gives a time."""
    when = at or (datetime.fromisoformat(waiver.signed_at) if waiver.signed_at else None)
    if when is None:
        raise ValueError("the waiver was never signed (no signed_at)")
    return governance_statement(
        action=ACTION.value,
        target=waiver_target(waiver),
        person=waiver.approver,
        reason=waiver.reason,
        at=when,
        path=waiver.path,
        fingerprint=waiver.fingerprint,
        expires=waiver.expires.isoformat() if waiver.expires else "",
    )


def signed_waivers(
    waivers: Sequence[Waiver], verifier: StatementVerifier, audit: AuditLog
) -> tuple[Waiver, ...]:
    """The waivers whose approver's signature verifies (role `security`); the others are
    dropped and audited."""
    kept = []
    for waiver in waivers:
        try:
            body = waiver_statement(waiver)
            verifier.verify(
                body,
                waiver.signature,
                statement_type=GOVERNANCE_TYPE,
                claimed=waiver.approver,
                role=Role.SECURITY,
                expect={"action": ACTION.value, "target": waiver_target(waiver)},
                used=lambda _digest: False,  # a standing decision, applied at every run
                fresh=False,
            )
        except (StatementRefused, ValueError, IdentityError) as err:
            _refused(audit, waiver, str(err))
            continue
        kept.append(waiver)
    return tuple(kept)


def _refused(audit: AuditLog, waiver: Waiver, reason: str) -> None:
    key = statement_digest(waiver.model_dump_json().encode("utf-8"))
    why = f"waiver not applied: {reason}"
    for event in map(typed, audit.events(LEDGER)):
        if isinstance(event, GovernanceRefused) and (event.waiver, event.reason) == (key, why):
            return
    audit.append(
        GovernanceRefused(
            actor="factory",
            run_id=LEDGER,
            action=ACTION.value,
            target=waiver_target(waiver),
            claimed=waiver.approver,
            waiver=key,
            reason=why,
        )
    )


def signed_verify_settings(
    settings: Settings, directory: Directory, audit: AuditLog
) -> VerifySettings:
    """`settings.verify` with only the waivers a security officer signed."""
    from codefactory.identity.governance import statement_verifier

    waivers = settings.verify.waivers
    if not waivers:
        return settings.verify
    kept = signed_waivers(waivers, statement_verifier(settings, directory), audit)
    return settings.verify.model_copy(update={"waivers": kept})
