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

After an approval the hand-off (`hand_off`) may wait for the CAB (`runs/hand_off.py`,
`CabGate`): the run stays `approved` until ServiceNow's change request says `approved`
(then it is handed off) or `rejected` (the run ends `rejected` with the CAB's reason). It
hands off to `handed_off` (the embedded default) or to QA (`review.sign_offs`), whose
signed sign-offs are `runs/sign_offs.py`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from codefactory.context.errors import ContextError
from codefactory.domain import Review, Run, RunState
from codefactory.identity.directory import FileDirectory, Person, Role
from codefactory.identity.errors import IdentityError
from codefactory.identity.port import Delegation
from codefactory.identity.statements import (
    REVIEW_TYPE,
    StatementRefused,
    StatementVerifier,
    VerifiedStatement,
    refuse_non_human,
    review_statement,
)
from codefactory.package.manifest import PackageAltered, keep_verdict
from codefactory.review.change_requests import (
    APPROVED,
    REJECTED,
    ApprovalDeliveryInvalid,
    CabAnswer,
    CabApprovalPending,
    CabCheckFailed,
    CabError,
    FiledChange,
    filed_change,
    read_approval_delivery,
)
from codefactory.review.errors import FactsRefused, ReviewError, VerdictRefused
from codefactory.review.port import Forge
from codefactory.review.segregation import check_reviewer
from codefactory.review.settings import ReviewTrackSettings
from codefactory.review.signed_facts import ReviewFacts, SignedFacts
from codefactory.runs.hand_off import (
    FORGE_APPROVAL_EVENT,
    HANDED_TO,
    NOT_REQUIRED,
    SIGNED_EVENT,
    ApprovalRecord,
    CabGate,
    approval_document,
    write_approval,
)
from codefactory.runs.loop import RunObserver
from codefactory.runs.sign_offs import SignOffDesk
from codefactory.store.runs import RunStore
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
CAB_AWAITED_EVENT = "cab-approval-awaited"
CAB_FAILED_EVENT = "cab-approval-check-failed"
CAB_APPROVED_EVENT = "cab-approved"
CAB_REJECTED_EVENT = "cab-rejected"
CAB_DELIVERED_EVENT = "cab-approval-delivered"
CAB_DELIVERY_REFUSED_EVENT = "cab-approval-delivery-refused"
__all__ = [
    "FORGE_APPROVAL_EVENT",
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
        store: RunStore,
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
            reason += self._cab_note(run)
        with self.store.atomic() as tx:
            tx.record_review(verdict, commit=facts.commit)
            tx.audit(
                SIGNED_EVENT,
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
            tx.transition(run_id, state, reason=reason, actor=person.actor)
        self._notify(run_id, state, reason)
        if approve:
            self._proceed(run_id, waiting_raises=False)
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
        where = {"forge": forge, "request": request, "review_id": review_id, "commit": commit}
        try:
            if run.state is not RunState.IN_REVIEW:
                raise ReviewNotOpen(f"run {run_id} is `{run.state.value}`, not waiting for review")
            facts = self.facts.establish(run, self.store.get_trigger(run.trigger_id))
            check_reviewer(reviewer=person_id, **self._parties(run, facts))
            person = self._forge_reviewer(run, person_id)
            # the directory's person, not only the forge's name, is held to segregation
            check_reviewer(reviewer=person.actor, **self._parties(run, facts))
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
            self.store.record(
                FORGE_REFUSED_EVENT,
                actor=f"forge:{forge}",
                run_id=run_id,
                claimed_reviewer=person_id.encode("unicode_escape").decode("ascii")[:120],
                reason=str(err),
                **where,
            )
            raise
        verdict = Review(
            run_id=run_id,
            reviewer=person.id,
            approved=True,
            comment=f"approved on {forge} {request}",
            at=datetime.now(UTC),
        )
        reason = f"approved by {person.id} on {forge} {request}" + self._cab_note(run)
        with self.store.atomic() as tx:
            tx.record_review(verdict, commit=facts.commit)
            tx.audit(
                FORGE_APPROVAL_EVENT,
                actor=person.actor,
                run_id=run_id,
                package_digest=facts.package_digest,
                attestation_digest=facts.attestation_digest,
                **where,
            )
            tx.transition(run_id, RunState.APPROVED, reason=reason, actor=person.actor)
        self._notify(run_id, RunState.APPROVED, reason)
        self._proceed(run_id, waiting_raises=False)
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
        self._proceed(run_id, waiting_raises=True)
        return self.store.require_run(run_id)

    def cab_approval_delivered(self, delivery: Delivery, secret: str) -> Run:
        """A ServiceNow business rule's notice that a change's `approval` changed (the
        shared secret `secret` in `X-Codefactory-Token`): finds the approved run of that
        change and hands it off as `hand_off` does, reading the Table API again (the
        delivery's own `approval` is recorded, never trusted). Raises
        `ApprovalDeliveryInvalid` (audited `cab-approval-delivery-refused`) for a delivery
        that is not signed or names no change a run waits on, and what `hand_off` raises."""
        try:
            notice = read_approval_delivery(delivery, secret)
            run = self._run_waiting_on(notice.sys_id)
            if run is None:
                raise ApprovalDeliveryInvalid(
                    f"no approved run waits on change {notice.number} ({notice.sys_id})"
                )
        except ApprovalDeliveryInvalid as err:
            self.store.record(
                CAB_DELIVERY_REFUSED_EVENT,
                actor="unauthenticated",
                run_id="",
                reason=err.reason,
                delivery_digest=delivery.digest,
            )
            raise
        self.store.record(
            CAB_DELIVERED_EVENT,
            actor="service:servicenow",
            run_id=run.id,
            number=notice.number,
            sys_id=notice.sys_id,
            said_approval=notice.approval,
            delivery_digest=delivery.digest,
        )
        return self.hand_off(run.id)

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

    @staticmethod
    def _parties(run: Run, facts: ReviewFacts) -> dict[str, str]:
        # the parties come from the verified delegation token, never from editable rows
        return {
            "sponsor": facts.sponsor,
            "agent_id": run.agent_id,
            "trigger_actor": facts.requested_by,
            "caused_by": facts.caused_by,  # who ran the trigger: `user:<id>`
            "run_id": run.id,
        }

    def _verify(
        self,
        run: Run,
        facts: ReviewFacts,
        statement: bytes,
        signature: str,
        reviewer: str,
        approve: bool,
    ) -> VerifiedStatement:
        parties = self._parties(run, facts)
        digest, fingerprint = "", ""
        try:
            check_reviewer(reviewer=reviewer, **parties)
            verified = self.statements.verify(
                statement,
                signature,
                statement_type=REVIEW_TYPE,
                claimed=reviewer,
                role=Role.REVIEWER,
                expect={
                    "run_id": run.id,
                    "commit": facts.commit,
                    "package_digest": facts.package_digest,
                    "verdict": "approve" if approve else "reject",
                },
                used=lambda found: self._used(run.id, found),
            )
            digest, fingerprint = verified.digest, verified.fingerprint
            # the signer, not only the claimed name, is held to segregation of duties
            check_reviewer(reviewer=verified.person.actor, **parties)
        except (StatementRefused, PackageAltered) as err:
            digest = getattr(err, "digest", "")
            fingerprint = getattr(err, "fingerprint", "")
            self._refused(run.id, reviewer, str(err), digest, fingerprint)
            raise VerdictRefused(run.id, getattr(err, "reason", str(err))) from err
        except ReviewError as err:
            self._refused(run.id, reviewer, str(err), digest, fingerprint)
            raise
        return verified

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
            (record.data.get("forge"), record.data.get("review_id")) == (forge, review_id)
            for record in self.store.audit_events(run_id)
            if record.name == FORGE_APPROVAL_EVENT
        )

    def _refused(
        self, run_id: str, reviewer: str, reason: str, digest: str, fingerprint: str
    ) -> None:
        claimed = reviewer.encode("unicode_escape").decode("ascii")[:120]
        with self.store.atomic() as tx:
            tx.audit(
                REFUSED_EVENT,
                actor="unauthenticated",
                run_id=run_id,
                claimed_reviewer=claimed,
                reason=reason,
                statement_digest=digest,
                key_fingerprint=fingerprint,
            )

    def _used(self, run_id: str, digest: str) -> bool:
        return any(
            record.data.get("statement_digest") == digest
            for record in self.store.audit_events(run_id)
            if record.name == SIGNED_EVENT
        )

    def _cab_note(self, run: Run) -> str:
        """`; waiting for CAB approval of CHG…` when the hand-off will wait for the CAB."""
        if self.cab is None:
            return ""
        try:
            change = self.cab.change_for(run, self.store.audit_events(run.id))
        except CabError:
            return "; waiting for CAB approval (no change request was filed)"
        return f"; waiting for CAB approval of {change.number}" if change else ""

    def _run_waiting_on(self, sys_id: str) -> Run | None:
        for run in self.store.search_runs(limit=1000):
            if run.state is RunState.APPROVED:
                change = filed_change(self.store.audit_events(run.id))
                if change is not None and change.sys_id == sys_id:
                    return run
        return None

    def _proceed(self, run_id: str, *, waiting_raises: bool) -> None:
        """Hand the approved run on, from its recorded approval: the signed facts are
        established again (the branch, the package and the rows must still be what was
        approved), the delegation must have covered the change when the agent packaged it
        and must not have been revoked since (its expiry bounds the agent's work, not the
        human review), and the CAB must have approved a change that needs it."""
        run = self.store.require_run(run_id)
        approval = ApprovalRecord.latest(self.store.audit_events(run_id))
        if approval is None:
            self._fail(run_id, "not handed off: no recorded approval")
            return
        try:
            facts = self.facts.establish(run, self.store.get_trigger(run.trigger_id))
            if (facts.commit, facts.package_digest) != (approval.commit, approval.package_digest):
                raise FactsRefused(run.id, "the commit or package changed during the review")
            if self.delegation is not None:
                packaged = [c.at for c in run.history if c.state is RunState.PACKAGED]
                self.delegation.check(run, action="review:hand-off", at=packaged[-1])
        except FactsRefused as err:
            evidence = approval.evidence
            self._refused(
                run.id,
                approval.approved_by,
                err.reason,
                evidence.get("statement_digest", ""),
                evidence.get("key_fingerprint", ""),
            )
            self._fail(run.id, f"not handed off: {err.reason}")
            return
        except (IdentityError, IndexError) as err:
            self._fail(run.id, f"not handed off: {err}")
            return
        cab = self._cab_answer(run, waiting_raises=waiting_raises)
        if cab is None or cab.approval == REJECTED:
            return
        self._finish(run, approval, facts, None if cab is NOT_REQUIRED else cab)

    def _cab_answer(self, run: Run, *, waiting_raises: bool) -> CabAnswer | None:
        """The CAB's approval of the run's change (`not required` when the gate does not
        apply); None while it waits or cannot be read (audited; raised if `waiting_raises`);
        a rejection ends the run."""
        if self.cab is None:
            return NOT_REQUIRED
        change: FiledChange | None = None
        try:
            change = self.cab.change_for(run, self.store.audit_events(run.id))
            if change is None:
                return NOT_REQUIRED
            answer = self.cab.answer(change)
            if answer.approval not in (APPROVED, REJECTED):
                raise CabApprovalPending(run.id, change.number, answer.approval)
        except ContextError as err:
            number = change.number if change else ""
            self.store.record(
                CAB_FAILED_EVENT, actor="factory", run_id=run.id, number=number, error=str(err)
            )
            if waiting_raises:
                raise CabCheckFailed(run.id, number, str(err)) from err
            return None
        except CabError as err:
            number = change.number if change else ""
            approval = getattr(err, "approval", "")
            self.store.record(
                CAB_AWAITED_EVENT,
                actor="factory",
                run_id=run.id,
                number=number,
                approval=approval,
                reason=str(err),
            )
            if waiting_raises:
                raise
            return None
        if answer.approval == REJECTED:
            reason = f"rejected by the CAB in {change.number}: {answer.reason}"
            with self.store.atomic() as tx:
                tx.audit(
                    CAB_REJECTED_EVENT,
                    actor="service:servicenow",
                    run_id=run.id,
                    number=change.number,
                    sys_id=change.sys_id,
                    reason=answer.reason,
                )
                tx.transition(run.id, RunState.REJECTED, reason=reason, actor="service:servicenow")
            self._notify(run.id, RunState.REJECTED, reason)
        return answer

    def _finish(
        self, run: Run, approval: ApprovalRecord, facts: ReviewFacts, cab: CabAnswer | None
    ) -> None:
        """Write `approval.json` and move the run on: `handed_off`, or to the first sign-off."""
        stages = tuple(self.track.sign_offs)
        write_approval(
            run,
            approval_document(
                run,
                approval,
                attestation_digest=facts.attestation_digest,
                sponsor=facts.sponsor,
                change=cab,
                stages=stages,
            ),
        )
        target = HANDED_TO[stages[0]] if stages else RunState.HANDED_OFF
        to = {RunState.IN_QA: "QA", RunState.IN_UAT: "UAT"}.get(target, "QA")
        cab_said = f" (CAB approved {cab.change.number})" if cab else ""
        reason = f"handed off to {to}: {run.branch} at {facts.commit[:12]}{cab_said}"
        with self.store.atomic() as tx:
            if cab is not None:
                tx.audit(
                    CAB_APPROVED_EVENT,
                    actor="service:servicenow",
                    run_id=run.id,
                    number=cab.change.number,
                    sys_id=cab.change.sys_id,
                )
            tx.transition(run.id, target, reason=reason, actor="factory")
        self._notify(run.id, target, reason)

    def _fail(self, run_id: str, reason: str) -> None:
        with self.store.atomic() as tx:
            tx.transition(run_id, RunState.FAILED, reason=reason, actor="factory")
        self._notify(run_id, RunState.FAILED, reason)

    def _notify(self, run_id: str, state: RunState, reason: str) -> None:
        if self.observer is not None:
            self.observer(run_id, state, reason)
