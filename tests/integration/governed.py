"""Real signed governance statements for tests that change the policy or the registry through
`GovernedFile` directly: a key made by ssh-keygen, a statement signed with it, checked by the
factory's own verifier (the ledger re-checks both statements whenever it is read)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from codefactory.identity.directory import Directory, Role
from codefactory.identity.four_eyes import GovernedFile, content_digest
from codefactory.identity.governance import GovernanceAction
from codefactory.identity.ssh_signatures import GOVERNANCE_NAMESPACE, sign
from codefactory.identity.statements import (
    GOVERNANCE_TYPE,
    StatementVerifier,
    VerifiedStatement,
    governance_statement,
)
from tests.directory_helpers import person, standard_directory
from tests.integration.signed_people import make_key


def admins_directory(folder: Path, role: str, *names: str) -> tuple[Path, dict[str, Path]]:
    """The standard directory plus `names` holding `role` with fresh keys; returns the
    directory file and each person's private key."""
    keys = {name: make_key(folder / "keys", name) for name in names}
    more = {name: person(name, roles=[role], ssh_keys=[keys[name].public]) for name in names}
    return standard_directory(folder, more), {name: key.private for name, key in keys.items()}


def signed(
    directory: Directory, who: str, key: Path, action: str, target: str, reason: str = ""
) -> VerifiedStatement:
    """`who`'s statement for `action` on `target` (and `reason`), signed with `key` and
    verified. Two statements alike in the same second are one statement (a replay)."""
    now = datetime.now(UTC)
    body = governance_statement(action=action, target=target, person=who, reason=reason, at=now)
    known = {act.value: act.role for act in GovernanceAction}
    role = known.get(action, Role.POLICY_ADMIN)  # a made-up kind of governed file: policy's
    return StatementVerifier(directory).verify(
        body,
        sign(body, key, GOVERNANCE_NAMESPACE),
        statement_type=GOVERNANCE_TYPE,
        claimed=who,
        role=role,
        expect={"action": action, "target": target},
        used=lambda _digest: False,
    )


def change(
    ledger: GovernedFile,
    text: str,
    *,
    proposer: tuple[str, Path],
    approver: tuple[str, Path],
    source: str = "test",
) -> str:
    """Propose `text` as `proposer` and approve it as `approver`; returns its digest."""
    directory = ledger.verifier.directory
    digest = content_digest(text)
    said = signed(directory, *proposer, f"{ledger.kind}-propose", digest)
    ledger.propose(text, source=source, statement=said)
    ledger.approve(digest, statement=signed(directory, *approver, f"{ledger.kind}-approve", digest))
    return digest
