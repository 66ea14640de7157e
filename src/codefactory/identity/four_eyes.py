"""Four eyes on a governed file (the policy, the engine registry): a change takes effect only
after a second person approves it.

The active content lives in the audit log's `governance` ledger, not in the file: the first
content a factory ever sees is adopted (`<kind>-adopted`, loudly: trust on first use is the
installer's act); afterwards a file whose digest differs from the active one changes nothing
until one person proposes it (`<kind>-proposed`, a signed `<kind>-propose` statement) and
another approves it (`<kind>-approved`, a signed `<kind>-approve` statement by someone who
is not the proposer). Until then the factory keeps the approved content and says so.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from codefactory.audit.port import AuditLog, AuditRecord
from codefactory.domain import AuditEvent
from codefactory.identity.errors import IdentityError
from codefactory.identity.governance import LEDGER
from codefactory.identity.statements import VerifiedStatement


class FourEyesRefused(IdentityError):
    """A proposal or approval that cannot take effect (names why)."""


def content_digest(text: str) -> str:
    """`sha256:<hex>` of the content's UTF-8 bytes."""
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, kw_only=True)
class GovernedState:
    """What a governed file amounts to now."""

    kind: str
    active_text: str
    active_digest: str
    configured_digest: str
    source: str
    adopted_now: bool = False

    @property
    def pending(self) -> bool:
        """The configured file differs from the active, approved content."""
        return self.configured_digest != self.active_digest

    def notice(self) -> str:
        """One line for banners and refusals; empty when the file is the active content."""
        if not self.pending:
            return ""
        return (
            f"{self.kind} {self.source} ({self.configured_digest[:19]}…) is not approved; "
            f"the factory uses the approved {self.kind} {self.active_digest[:19]}… until "
            f"`codefactory {_command(self.kind)} propose` and a second person's approve"
        )


def _command(kind: str) -> str:
    return "engines" if kind == "registry" else kind


class GovernedFile:
    """The ledger of one kind of governed content (`policy`, `registry`)."""

    def __init__(self, kind: str, audit: AuditLog) -> None:
        self.kind = kind
        self.audit = audit

    def state(self, configured_text: str, *, source: str) -> GovernedState:
        """The active content and how the configured file compares; adopts the configured
        content when nothing was ever active (`<kind>-adopted`)."""
        digest = content_digest(configured_text)
        active = self._active()
        if active is None:
            self._append(
                f"{self.kind}-adopted",
                "installer",
                digest=digest,
                source=source,
                content=configured_text,
                note="trust on first use: the first content this factory saw",
            )
            return GovernedState(
                kind=self.kind,
                active_text=configured_text,
                active_digest=digest,
                configured_digest=digest,
                source=source,
                adopted_now=True,
            )
        return GovernedState(
            kind=self.kind,
            active_text=str(active.data["content"]),
            active_digest=str(active.data["digest"]),
            configured_digest=digest,
            source=source,
        )

    def propose(self, text: str, *, source: str, statement: VerifiedStatement) -> str:
        """Record `text` as proposed by the statement's signer; returns its digest."""
        digest = content_digest(text)
        active = self._active()
        if active is not None and active.data.get("digest") == digest:
            raise FourEyesRefused(f"{self.kind} {digest} is already the active {self.kind}")
        self._append(
            f"{self.kind}-proposed",
            statement.person.actor,
            digest=digest,
            source=source,
            content=text,
            proposer=statement.person.id,
            statement_digest=statement.digest,
        )
        return digest

    def approve(self, digest: str, *, statement: VerifiedStatement) -> None:
        """Make the proposal with `digest` active; `FourEyesRefused` without a proposal, for
        the proposer's own approval, or when it is active already."""
        proposal = self.proposal(digest)
        if proposal is None:
            raise FourEyesRefused(f"no {self.kind} proposal has the digest {digest}")
        if proposal.data.get("proposer") == statement.person.id:
            raise FourEyesRefused(
                f"four eyes: {statement.person.id} proposed {self.kind} {digest} and cannot "
                "approve it too; a second person must"
            )
        active = self._active()
        if active is not None and active.data.get("digest") == digest:
            raise FourEyesRefused(f"{self.kind} {digest} is already the active {self.kind}")
        self._append(
            f"{self.kind}-approved",
            statement.person.actor,
            digest=digest,
            source=proposal.data.get("source", ""),
            content=proposal.data["content"],
            proposer=proposal.data.get("proposer", ""),
            approver=statement.person.id,
            statement_digest=statement.digest,
        )

    def proposal(self, digest: str) -> AuditRecord | None:
        """The latest proposal of content with this digest, or None."""
        found = None
        for record in self.audit.events(LEDGER):
            if record.name == f"{self.kind}-proposed" and record.data.get("digest") == digest:
                found = record
        return found

    def _active(self) -> AuditRecord | None:
        candidates = [
            self.audit.latest(f"{self.kind}-adopted"),
            self.audit.latest(f"{self.kind}-approved"),
        ]
        present = [record for record in candidates if record is not None]
        return max(present, key=lambda record: record.seq, default=None)

    def _append(self, name: str, actor: str, **data: object) -> None:
        self.audit.append(
            AuditEvent(name=name, actor=actor, run_id=LEDGER, data=data, at=datetime.now(UTC))
        )
