"""Four eyes on a governed file (the policy, the engine registry): a change takes effect only
after a second person approves it.

The active content lives in the audit log's `governance` ledger, not in the file: the first
content a factory ever sees is adopted (`<kind>-adopted`, loudly: trust on first use is the
installer's act); afterwards a file whose digest differs from the active one changes nothing
until one person proposes it (`<kind>-proposed`, a signed `<kind>-propose` statement) and
another approves it (`<kind>-approved`, a signed `<kind>-approve` statement by someone who
is not the proposer). Until then the factory keeps the approved content and says so.

Nothing in the ledger counts on its name alone (an insider who can write the data folder can
append any event): an approval counts only when its event carries both signed statements,
the proposal's and the approval's, and they verify again when read (`signed_events.reverify`:
directory keys, role `policy-admin`/`registry-admin`, two different people, both over the
content's digest, which matches the content). The content in force is that of the approval
whose statement is the latest (`at`); a statement seen before is a replay. The adoption counts
only as the first governed event of its kind, made before any run. An event that does not
verify changes nothing; it is named in `GovernedState.ignored` and audited once
(`governance-event-ignored`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from codefactory.audit.port import AuditLog, AuditRecord
from codefactory.domain import UnknownEvent
from codefactory.identity.directory import Role
from codefactory.identity.errors import IdentityError
from codefactory.identity.governance import LEDGER
from codefactory.identity.signed_events import reverify, signed_fields, statement_at
from codefactory.identity.statements import StatementRefused, StatementVerifier, VerifiedStatement

IGNORED_EVENT = "governance-event-ignored"
GOVERNED_NAMES = ("adopted", "proposed", "approved")


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
    ignored: tuple[str, ...] = ()
    """One line per ledger event of this kind that did not verify and was ignored."""

    @property
    def pending(self) -> bool:
        """The configured file differs from the active, approved content."""
        return self.configured_digest != self.active_digest

    def notices(self) -> list[str]:
        """Every line `status` and `serve` say: the pending file, each ignored event."""
        return [line for line in (self.notice(), *self.ignored) if line]

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


@dataclass(frozen=True, kw_only=True)
class Proposal:
    """A proposal whose signed statement verified."""

    record: AuditRecord
    statement: VerifiedStatement

    @property
    def digest(self) -> str:
        return str(self.record.data["digest"])

    @property
    def proposer(self) -> str:
        return self.statement.person.id


@dataclass(frozen=True, kw_only=True)
class Ledger:
    """What the governance ledger of one kind amounts to once every event is checked."""

    active: AuditRecord | None
    proposals: tuple[Proposal, ...]
    ignored: tuple[tuple[int, str, str], ...]
    """(seq, event name, why) of each event that did not verify."""
    governed: bool
    """Whether any event of this kind is in the ledger at all (verified or not)."""

    def notices(self) -> tuple[str, ...]:
        return tuple(
            f"an unverifiable {name} event at seq {seq} was ignored: {why}"
            for seq, name, why in self.ignored
        )


class GovernedFile:
    """The ledger of one kind of governed content (`policy`, `registry`); `verifier` checks
    the statements its events carry against the directory."""

    def __init__(self, kind: str, audit: AuditLog, verifier: StatementVerifier) -> None:
        self.kind = kind
        self.audit = audit
        self.verifier = verifier
        self.role = Role.REGISTRY_ADMIN if kind == "registry" else Role.POLICY_ADMIN

    def state(self, configured_text: str, *, source: str) -> GovernedState:
        """The active content and how the configured file compares; adopts the configured
        content when nothing was ever active (`<kind>-adopted`). `FourEyesRefused` when the
        ledger holds events of this kind but none that counts (fail closed)."""
        digest = content_digest(configured_text)
        ledger = self.read()
        self._report(ledger)
        active = ledger.active
        if active is None and ledger.governed:
            raise FourEyesRefused(
                f"no trusted {self.kind} in the governance ledger: "
                + ("; ".join(ledger.notices()) or f"the {self.kind}-adopted event does not count")
            )
        if active is None and not self._before_any_run(None):
            raise FourEyesRefused(
                f"no {self.kind} was ever adopted and runs exist already: trust on first use "
                "is the installer's act, before any run"
            )
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
            ignored=ledger.notices(),
        )

    def propose(self, text: str, *, source: str, statement: VerifiedStatement) -> str:
        """Record `text` as proposed by the statement's signer; returns its digest."""
        digest = content_digest(text)
        self._refuse_active(self.read(), digest)
        self._append(
            f"{self.kind}-proposed",
            statement.person.actor,
            digest=digest,
            source=source,
            content=text,
            proposer=statement.person.id,
            **signed_fields(statement),
        )
        return digest

    def approve(self, digest: str, *, statement: VerifiedStatement) -> None:
        """Make the proposal with `digest` active; `FourEyesRefused` without a proposal whose
        own signed statement verifies, for the proposer's own approval, or when it is active
        already."""
        ledger = self.read()
        proposal = _latest(p for p in ledger.proposals if p.digest == digest)
        if proposal is None:
            raise FourEyesRefused(f"no {self.kind} proposal has the digest {digest}")
        if proposal.proposer == statement.person.id:
            raise FourEyesRefused(
                f"four eyes: {statement.person.id} proposed {self.kind} {digest} and cannot "
                "approve it too; a second person must"
            )
        self._refuse_active(ledger, digest)
        self._append(
            f"{self.kind}-approved",
            statement.person.actor,
            digest=digest,
            source=proposal.record.data.get("source", ""),
            content=proposal.record.data["content"],
            proposer=proposal.proposer,
            approver=statement.person.id,
            **signed_fields(statement),
            **signed_fields(proposal.statement, prefix="proposal_"),
        )

    def proposal(self, digest: str) -> AuditRecord | None:
        """The latest proposal of content with this digest whose statement verifies, or None."""
        found = _latest(p for p in self.read().proposals if p.digest == digest)
        return found.record if found is not None else None

    def pending(self) -> list[Proposal]:
        """Verified proposals newer than the content in force, one per digest."""
        ledger = self.read()
        after = ledger.active.seq if ledger.active is not None else -1
        active = ledger.active.data.get("digest") if ledger.active is not None else None
        found: dict[str, Proposal] = {}
        for proposal in ledger.proposals:
            if proposal.record.seq > after and proposal.digest != active:
                found[proposal.digest] = proposal
        return list(found.values())

    def _refuse_active(self, ledger: Ledger, digest: str) -> None:
        """`FourEyesRefused` when the content with `digest` is the one in force already."""
        active = ledger.active
        if active is not None and active.data.get("digest") == digest:
            raise FourEyesRefused(f"{self.kind} {digest} is already the active {self.kind}")

    def read(self) -> Ledger:
        """Every event of this kind in the ledger, checked (see the module docstring)."""
        names = {f"{self.kind}-{name}" for name in GOVERNED_NAMES}
        records = [r for r in self.audit.events(LEDGER) if r.name in names]
        ignored: list[tuple[int, str, str]] = []
        adopted = self._adopted(records, ignored)
        proposals: list[Proposal] = []
        approvals: list[tuple[datetime, int, AuditRecord]] = []
        seen: set[str] = set()
        for record in records:
            try:
                if record.name == f"{self.kind}-proposed":
                    proposals.append(Proposal(record=record, statement=self._proposed(record)))
                elif record.name == f"{self.kind}-approved":
                    at, digests = self._approved(record)
                    if digests & seen:
                        raise StatementRefused("its statements were used before (replay)")
                    seen |= digests
                    approvals.append((at, record.seq, record))
            except StatementRefused as err:
                ignored.append((record.seq, record.name, err.reason))
        approvals.sort(key=lambda item: (item[0], item[1]))
        return Ledger(
            active=approvals[-1][2] if approvals else adopted,
            proposals=tuple(proposals),
            ignored=tuple(ignored),
            governed=bool(records),
        )

    def _adopted(
        self, records: list[AuditRecord], ignored: list[tuple[int, str, str]]
    ) -> AuditRecord | None:
        """The adoption if it is the first event of this kind and came before any run;
        every other `<kind>-adopted` is ignored."""
        adopted = None
        for index, record in enumerate(records):
            if record.name != f"{self.kind}-adopted":
                continue
            if index != 0:
                ignored.append((record.seq, record.name, "not the first event of its kind"))
            elif not self._before_any_run(record.seq):
                ignored.append((record.seq, record.name, "made after runs existed"))
            elif _content_matches(record):
                adopted = record
            else:
                ignored.append((record.seq, record.name, "its content does not match its digest"))
        return adopted

    def _before_any_run(self, seq: int | None) -> bool:
        """No run's event comes before `seq` (None: in the whole log)."""
        for leaf in self.audit.leaves():
            if seq is not None and leaf.seq >= seq:
                return True
            if leaf.run_id not in ("", LEDGER) or leaf.name == "run-created":
                return False
        return True

    def _proposed(self, record: AuditRecord) -> VerifiedStatement:
        digest = str(record.data.get("digest", ""))
        if not _content_matches(record):
            raise StatementRefused("its content does not match its digest")
        return reverify(
            self.verifier,
            record.data,
            role=self.role,
            expect={"action": f"{self.kind}-propose", "target": digest},
        )

    def _approved(self, record: AuditRecord) -> tuple[datetime, set[str]]:
        """The approval's `at` and both statement digests, if both statements verify."""
        digest = str(record.data.get("digest", ""))
        if not _content_matches(record):
            raise StatementRefused("its content does not match its digest")
        approval = reverify(
            self.verifier,
            record.data,
            role=self.role,
            expect={"action": f"{self.kind}-approve", "target": digest},
        )
        proposal = reverify(
            self.verifier,
            record.data,
            role=self.role,
            expect={"action": f"{self.kind}-propose", "target": digest},
            prefix="proposal_",
        )
        if approval.person.id == proposal.person.id:
            raise StatementRefused(
                f"four eyes: {approval.person.id} signed both the proposal and the approval"
            )
        return statement_at(approval), {approval.digest}

    def _report(self, ledger: Ledger) -> None:
        """One `governance-event-ignored` per ignored event (by seq), not more."""
        if not ledger.ignored:
            return
        reported = {
            record.data.get("seq")
            for record in self.audit.events(LEDGER)
            if record.name == IGNORED_EVENT
        }
        for seq, name, why in ledger.ignored:
            if seq not in reported:
                self._append(IGNORED_EVENT, "factory", seq=seq, event=name, reason=why)

    def _append(self, name: str, actor: str, **data: object) -> None:
        self.audit.append(
            UnknownEvent(kind=name, actor=actor, run_id=LEDGER, payload=data, at=datetime.now(UTC))
        )


def _content_matches(record: AuditRecord) -> bool:
    content = record.data.get("content")
    return isinstance(content, str) and content_digest(content) == record.data.get("digest")


def _latest(proposals: Iterable[Proposal]) -> Proposal | None:
    found = None
    for proposal in proposals:
        found = proposal
    return found
