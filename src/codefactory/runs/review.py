"""The human end of the loop: a reviewer's signed verdict, the SoD gate, then the hand-off.

A verdict counts only as a statement (`identity.statements.review_statement`) over this run,
its head commit and its package digest, signed with a key the directory lists for a person
holding the `reviewer` role who is neither the sponsor, the agent, the requester nor the
person who caused the trigger. The statement and its signature are kept in the package. A
review approval on the forge (`record_forge_approval`, from a signed webhook) counts by the
same rules, the person named by the forge's signed delivery.

The run's commit, package digest, sponsor, requester and the person who caused the trigger
are never taken from `factory.db` rows alone: `review.signed_facts.SignedFacts` derives them
from the agent's and the issuer's signatures (pinned keys), before the verdict and again
before the hand-off; rows that disagree refuse the review (`FactsRefused`, audited as
`review-refused`).

After an approval the hand-off (`runs/hand_off.py`) may wait for the CAB (`runs/cab_gate.py`,
`CabGate`): the run stays `approved` until ServiceNow's change request says `approved`
(then it is handed off) or `rejected` (the run ends `rejected` with the CAB's reason). It
hands off to `handed_off` (the embedded default) or to QA (`review.sign_offs`), whose
signed sign-offs are `runs/sign_offs.py`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from codefactory.audit.events import (
    ForgeApprovalRecorded,
    ReviewRefused,
    ReviewSigned,
    typed,
)
from codefactory.audit.events import (
    ForgeApprovalRefused as ForgeApprovalRefusedEvent,
)
from codefactory.domain import Review, Run, RunState
from codefactory.identity.directory import FileDirectory, Person, Role
from codefactory.identity.errors import IdentityError
from codefactory.identity.port import Delegation
from codefactory.identity.statements import (
    REVIEW_TYPE,
    StatementVerifier,
    VerifiedStatement,
    refuse_non_human,
    review_statement,
)
from codefactory.package.manifest import keep_verdict
from codefactory.review.errors import FactsRefused, ReviewError, VerdictRefused
from codefactory.review.port import Forge
from codefactory.review.segregation import check_reviewer
from codefactory.review.settings import ReviewTrackSettings
from codefactory.review.signed_facts import ReviewFacts, SignedFacts
from codefactory.runs.approval_record import FORGE_APPROVAL_EVENT, SIGNED_EVENT
from codefactory.runs.cab_gate import CabGate
from codefactory.runs.hand_off import HandOff
from codefactory.runs.loop import RunObserver
from codefactory.runs.sign_offs import SignOffDesk, segregation_parties, verified_by_party
from codefactory.store.port import RunRepository
from codefactory.triggers.port import Delivery


class ReviewNotOpen(ReviewError):
    """The run is not waiting for review (names its state), or its branch moved."""


class HandOffNotDue(ReviewError):
    """A hand-off was asked of a run that is not `approved` (names its state)."""

    def __init__(self, run_id: str, state: RunState) -> None:
        super().__init__(
            f"run {run_id} is `{state.value}`, not approved and waiting to be handed off"
        )
        self.run_id = run_id
        self.state = state


class ForgeApprovalRefused(VerdictRefused):
    """A forge review approval that does not count: the person is unknown or not a reviewer,
    it approves another commit than the signed head commit, or it was recorded already."""


REFUSED_EVENT = "review-refused"
FORGE_REFUSED_EVENT = "forge-approval-refused"
__all__ = [
    "FORGE_APPROVAL_EVENT",
    "FORGE_REFUSED_EVENT",
    "REFUSED_EVENT",
    "SIGNED_EVENT",
    "ForgeApprovalRefused",
    "HandOffNotDue",
    "ReviewDesk",
    "ReviewNotOpen",
]


class ReviewDesk:
    """Records signed approvals and rejections; an approval hands the change off, through
    the CAB's gate when it applies; QA and UAT sign off after (`sign_off`)."""

    def __init__(
        self,
        *,
        store: RunRepository,
        forge: Forge,
        facts: SignedFacts,
        observer: RunObserver | None = None,
        delegation: Delegation | None = None,
        statements: StatementVerifier | None = None,
        track: ReviewTrackSettings | None = None,
        cab: CabGate | None = None,
    ):
        self.store = store
        self.forge = forge
        self.facts = facts
        self.observer = observer
        self.delegation = delegation
        self.statements = statements or StatementVerifier(FileDirectory(None))
        self.track = track or ReviewTrackSettings()
        self.cab = cab
        self.handing = HandOff(
            store=store,
            facts=facts,
            delegation=delegation,
            cab=cab,
            stages=tuple(self.track.sign_offs),
            notify=self._notify,
            refused=self._refused,
        )
        self.sign_offs = SignOffDesk(
            store=store,
            facts=facts,
            statements=self.statements,
            stages=tuple(self.track.sign_offs),
            notify=self._notify,
        )

    def statement_for(
        self, run_id: str, *, reviewer: str, approve: bool, comment: str = ""
    ) -> bytes:
        """The statement `reviewer` signs for a verdict on the run as it is now (its head
        commit and package digest, as signed: `SignedFacts`); `ReviewNotOpen` when it is not
        in review, `FactsRefused` (audited) when its signed facts do not hold."""
        run = self._open(run_id)
        facts = self._facts(run, reviewer)
        return review_statement(
            run_id=run.id,
            commit=facts.commit,
            package_digest=facts.package_digest,
            verdict="approve" if approve else "reject",
            reviewer=refuse_non_human(reviewer),
            comment=comment,
        )

    def decide(
        self, run_id: str, *, statement: bytes, signature: str, reviewer: str, approve: bool
    ) -> Run:
        """Record the verdict `statement` (signed: `signature`, armored SSH signature) says
        `reviewer` gives. Refuses (`VerdictRefused`, `SegregationViolation`, audited as
        `review-refused`) anything but a fresh, unused statement of `approve`'s verdict over
        this run's signed commit and attested package, signed by that reviewer's own key;
        refuses (`FactsRefused`, audited) a run whose rows, branch or package disagree with
        what the agent and the issuer signed. An approval proceeds to the hand-off, which
        may wait for the CAB (the run stays `approved`; `hand_off` later)."""
        run = self._open(run_id)
        facts = self._facts(run, reviewer)
        verified = self._verify(run, facts, statement, signature, reviewer, approve)
        comment = str(verified.fields.get("comment", ""))
        person = verified.person
        verdict = Review(
            run_id=run_id,
            reviewer=person.id,
            approved=approve,
            comment=comment,
            at=datetime.now(UTC),
        )
        kept = keep_verdict(
            Path(run.package_dir),
            verdict="approve" if approve else "reject",
            body=verified.body,
            signature=verified.signature,
            allowed_signers_line=verified.allowed_signers_line,
        )
        state = RunState.APPROVED if approve else RunState.REJECTED
        reason = f"{'approved' if approve else 'rejected'} by {person.id}" + (
            f": {comment}" if comment else ""
        )
        if approve:
            reason += self.handing.cab_note(run)
        with self.store.atomic() as tx:
            tx.record_review(verdict, commit=facts.commit)
            tx.append(
                ReviewSigned(
                    actor=person.actor,
                    run_id=run_id,
                    verdict=verified.fields["verdict"],
                    statement_digest=verified.digest,
                    key_fingerprint=verified.fingerprint,
                    package_digest=verified.fields["package_digest"],
                    attestation_digest=facts.attestation_digest,
                    commit=facts.commit,
                    statement=str(kept.relative_to(run.package_dir)),
                    allowed_signers=verified.allowed_signers_line,
                )
            )
            tx.transition(run_id, state, reason=reason, actor=person.actor)
        self._notify(run_id, state, reason)
        if approve:
            self.handing.proceed(run_id, waiting_raises=False)
        return self.store.require_run(run_id)

    def record_forge_approval(
        self,
        run_id: str,
        *,
        person_id: str,
        commit: str,
        forge: str,
        request: str,
        review_id: str,
    ) -> Run:
        """Record a review approval given on the forge (`forge` `github`, …, on pull/merge
        request `request`, the forge's review id `review_id`) by the directory person
        `person_id` the signed webhook names, for `commit`; then proceed to the hand-off as a
        signed verdict does. Refuses, audited as `forge-approval-refused`: a run not in review
        (`ReviewNotOpen`), facts that do not hold (`FactsRefused`), a person not in the
        directory or without the `reviewer` role, another commit than the signed head commit,
        a review recorded before (`ForgeApprovalRefused`), a party to the change
        (`SegregationViolation`)."""
        run = self.store.require_run(run_id)
        try:
            if run.state is not RunState.IN_REVIEW:
                raise ReviewNotOpen(f"run {run_id} is `{run.state.value}`, not waiting for review")
            facts = self.facts.establish(run, self.store.get_trigger(run.trigger_id))
            check_reviewer(reviewer=person_id, **segregation_parties(run, facts))
            person = self._forge_reviewer(run, person_id)
            # the directory's person, not only the forge's name, is held to segregation
            check_reviewer(reviewer=person.actor, **segregation_parties(run, facts))
            if commit != facts.commit:
                raise ForgeApprovalRefused(
                    run_id,
                    f"{forge} review {review_id} approves commit {commit}, not the signed head "
                    f"commit {facts.commit}: an approval binds to the reviewed commit",
                )
            if self._forge_review_used(run_id, forge, review_id):
                raise ForgeApprovalRefused(
                    run_id, f"{forge} review {review_id} was recorded already (replay)"
                )
        except ReviewError as err:
            self.store.append(
                ForgeApprovalRefusedEvent(
                    actor=f"forge:{forge}",
                    run_id=run_id,
                    claimed_reviewer=person_id.encode("unicode_escape").decode("ascii")[:120],
                    reason=str(err),
                    forge=forge,
                    request=request,
                    review_id=review_id,
                    commit=commit,
                )
            )
            raise
        verdict = Review(
            run_id=run_id,
            reviewer=person.id,
            approved=True,
            comment=f"approved on {forge} {request}",
            at=datetime.now(UTC),
        )
        reason = f"approved by {person.id} on {forge} {request}" + self.handing.cab_note(run)
        with self.store.atomic() as tx:
            tx.record_review(verdict, commit=facts.commit)
            tx.append(
                ForgeApprovalRecorded(
                    actor=person.actor,
                    run_id=run_id,
                    package_digest=facts.package_digest,
                    attestation_digest=facts.attestation_digest,
                    forge=forge,
                    request=request,
                    review_id=review_id,
                    commit=commit,
                )
            )
            tx.transition(run_id, RunState.APPROVED, reason=reason, actor=person.actor)
        self._notify(run_id, RunState.APPROVED, reason)
        self.handing.proceed(run_id, waiting_raises=False)
        return self.store.require_run(run_id)

    def hand_off(self, run_id: str) -> Run:
        """Hand off an approved run that waited for the CAB: ServiceNow's `approval` of its
        change request is read now; `approved` hands it off, `rejected` ends the run
        `rejected` with the CAB's reason. Raises `HandOffNotDue` (not `approved`),
        `CabApprovalPending` (still `requested` or `not requested`: audited
        `cab-approval-awaited`), `CabCheckFailed` (ServiceNow could not be asked: audited
        `cab-approval-check-failed`), `ChangeRequestMissing`; the run stays `approved`."""
        run = self.store.require_run(run_id)
        if run.state is not RunState.APPROVED:
            raise HandOffNotDue(run_id, run.state)
        self.handing.proceed(run_id, waiting_raises=True)
        return self.store.require_run(run_id)

    def cab_approval_delivered(self, delivery: Delivery, secret: str) -> Run:
        """A ServiceNow business rule's notice that a change's `approval` changed (the
        shared secret `secret` in `X-Codefactory-Token`): finds the approved run of that
        change and hands it off as `hand_off` does, reading the Table API again (the
        delivery's own `approval` is recorded, never trusted). Raises
        `ApprovalDeliveryInvalid` (audited `cab-approval-delivery-refused`) for a delivery
        that is not signed or names no change a run waits on, and what `hand_off` raises."""
        return self.hand_off(self.handing.delivered(delivery, secret))

    def sign_off_statement(
        self, run_id: str, *, stage: str, signer: str, accept: bool, reason: str = ""
    ) -> bytes:
        """The statement a QA or UAT person signs (`runs/sign_offs.py`)."""
        return self.sign_offs.statement_for(
            run_id, stage=stage, signer=signer, accept=accept, reason=reason
        )

    def sign_off(
        self,
        run_id: str,
        *,
        stage: str,
        statement: bytes,
        signature: str,
        signer: str,
        accept: bool,
    ) -> Run:
        """Record a signed QA or UAT sign-off (`runs/sign_offs.py`, `SignOffDesk.sign_off`)."""
        return self.sign_offs.sign_off(
            run_id,
            stage=stage,
            statement=statement,
            signature=signature,
            signer=signer,
            accept=accept,
        )

    def _open(self, run_id: str) -> Run:
        run = self.store.require_run(run_id)
        if run.state is not RunState.IN_REVIEW:
            raise ReviewNotOpen(f"run {run_id} is `{run.state.value}`, not waiting for review")
        return run

    def _facts(self, run: Run, reviewer: str) -> ReviewFacts:
        """The run's signed facts; a refusal is audited (`review-refused`) and raised."""
        try:
            return self.facts.establish(run, self.store.get_trigger(run.trigger_id))
        except FactsRefused as err:
            self._refused(run.id, reviewer, err.reason, "", "")
            raise

    def _verify(
        self,
        run: Run,
        facts: ReviewFacts,
        statement: bytes,
        signature: str,
        reviewer: str,
        approve: bool,
    ) -> VerifiedStatement:
        return verified_by_party(
            self.statements,
            run=run,
            facts=facts,
            statement=statement,
            signature=signature,
            claimed=reviewer,
            statement_type=REVIEW_TYPE,
            role=Role.REVIEWER,
            expect={"verdict": "approve" if approve else "reject"},
            used=lambda found: self._used(run.id, found),
            refused=lambda why, digest, key: self._refused(run.id, reviewer, why, digest, key),
            refusal=lambda reason: VerdictRefused(run.id, reason),
        )

    def _forge_reviewer(self, run: Run, person_id: str) -> Person:
        try:
            found = self.statements.directory.person(refuse_non_human(person_id))
        except IdentityError as err:
            raise ForgeApprovalRefused(run.id, str(err)) from err
        if found is None:
            raise ForgeApprovalRefused(run.id, f"no person {person_id!r} in the directory")
        if not found.has_role(Role.REVIEWER):
            raise ForgeApprovalRefused(
                run.id, f"{found.id} does not hold the role {Role.REVIEWER.value!r}"
            )
        return found

    def _forge_review_used(self, run_id: str, forge: str, review_id: str) -> bool:
        return any(
            (event.forge, event.review_id) == (forge, review_id)
            for event in map(typed, self.store.audit_events(run_id))
            if isinstance(event, ForgeApprovalRecorded)
        )

    def _refused(
        self, run_id: str, reviewer: str, reason: str, digest: str, fingerprint: str
    ) -> None:
        claimed = reviewer.encode("unicode_escape").decode("ascii")[:120]
        with self.store.atomic() as tx:
            tx.append(
                ReviewRefused(
                    actor="unauthenticated",
                    run_id=run_id,
                    claimed_reviewer=claimed,
                    reason=reason,
                    statement_digest=digest,
                    key_fingerprint=fingerprint,
                )
            )

    def _used(self, run_id: str, digest: str) -> bool:
        return any(
            event.statement_digest == digest
            for event in map(typed, self.store.audit_events(run_id))
            if isinstance(event, ReviewSigned)
        )

    def _notify(self, run_id: str, state: RunState, reason: str) -> None:
        if self.observer is not None:
            self.observer(run_id, state, reason)
