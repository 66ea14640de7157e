"""The hand-off after approval: the signed facts again, the CAB's gate, then QA or the end.

`HandOff.proceed` runs right after an approval and again whenever asked (`review hand-off`,
a ServiceNow business rule's notice), always from the recorded approval
(`approval_record.ApprovalRecord`). While the CAB has not approved a change that needs it
(`cab_gate.CabGate`), the run stays `approved`: `cab-approval-awaited`, or
`cab-approval-check-failed` when ServiceNow cannot be asked. The CAB's rejection ends the run
`rejected` (`cab-rejected`); its approval (`cab-approved`) lets the hand-off write
`approval.json` and move the run to `handed_off`, or to the first sign-off of
`review.sign_offs` (`in_qa`, `in_uat`).
"""

from __future__ import annotations

from collections.abc import Callable

from codefactory.audit.events import (
    CabApprovalAwaited,
    CabApprovalCheckFailed,
    CabApprovalDelivered,
    CabApprovalDeliveryRefused,
    CabApproved,
    CabRejected,
)
from codefactory.context.errors import ContextError
from codefactory.domain import Run, RunState
from codefactory.identity.errors import IdentityError
from codefactory.identity.port import Delegation
from codefactory.review.change_requests import (
    APPROVED,
    CAB_WAIT,
    REJECTED,
    ApprovalDeliveryInvalid,
    ApprovalDeliveryUnauthenticated,
    CabAnswer,
    CabApprovalPending,
    CabCheckFailed,
    CabError,
    FiledChange,
    filed_change,
    read_approval_delivery,
)
from codefactory.review.errors import FactsRefused
from codefactory.review.signed_facts import ReviewFacts, SignedFacts
from codefactory.runs.approval_record import ApprovalRecord, approval_document, write_approval
from codefactory.runs.cab_gate import NOT_REQUIRED, CabGate
from codefactory.store.port import RunRepository
from codefactory.triggers.port import Delivery

CAB_AWAITED_EVENT = "cab-approval-awaited"
CAB_FAILED_EVENT = "cab-approval-check-failed"
CAB_APPROVED_EVENT = "cab-approved"
CAB_REJECTED_EVENT = "cab-rejected"
CAB_DELIVERED_EVENT = "cab-approval-delivered"
CAB_DELIVERY_REFUSED_EVENT = "cab-approval-delivery-refused"
SERVICENOW_ACTOR = "service:servicenow"
HANDED_TO = {"qa": RunState.IN_QA, "uat": RunState.IN_UAT}
STAGE_NAME = {RunState.IN_QA: "QA", RunState.IN_UAT: "UAT"}

MAX_WAITING = 10_000
"""Approved runs looked at for a notice's change, newest first (runs waiting for the CAB)."""

Notify = Callable[[str, RunState, str], None]
Refused = Callable[[str, str, str, str, str], None]
"""Audits a refused review: (run id, reviewer, reason, statement digest, key fingerprint)."""


class HandOff:
    """Moves an approved run on, through the CAB's gate when it applies."""

    def __init__(
        self,
        *,
        store: RunRepository,
        facts: SignedFacts,
        delegation: Delegation | None,
        cab: CabGate | None,
        stages: tuple[str, ...],
        notify: Notify,
        refused: Refused,
    ) -> None:
        self.store = store
        self.facts = facts
        self.delegation = delegation
        self.cab = cab
        self.stages = stages
        self.notify = notify
        self.refused = refused

    def cab_note(self, run: Run) -> str:
        """`; waiting for CAB approval of CHG…` when the hand-off will wait for the CAB."""
        if self.cab is None:
            return ""
        try:
            change = self.cab.change_for(run, self.store.audit_events(run.id))
        except CabError:
            return f"; {CAB_WAIT} (no change request was filed)"
        return f"; {CAB_WAIT} of {change.number}" if change else ""

    def proceed(self, run_id: str, *, waiting_raises: bool) -> None:
        """Hand the approved run on, from its recorded approval: the signed facts are
        established again (the branch, the package and the rows must still be what was
        approved), the delegation must have covered the change when the agent packaged it
        and must not have been revoked since (its expiry bounds the agent's work, not the
        human review), and the CAB must have approved a change that needs it. With
        `waiting_raises`, a wait is raised (`CabApprovalPending`, `CabCheckFailed`,
        `ChangeRequestMissing`) after it is audited."""
        run = self.store.require_run(run_id)
        approval = ApprovalRecord.latest(self.store.audit_events(run_id))
        if approval is None:
            self.fail(run_id, "not handed off: no recorded approval")
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
            self.refused(
                run.id,
                approval.approved_by,
                err.reason,
                evidence.get("statement_digest", ""),
                evidence.get("key_fingerprint", ""),
            )
            self.fail(run.id, f"not handed off: {err.reason}")
            return
        except (IdentityError, IndexError) as err:
            self.fail(run.id, f"not handed off: {err}")
            return
        cab = self._cab_answer(run, waiting_raises=waiting_raises)
        if cab is None or cab.approval == REJECTED:
            return
        self._finish(run, approval, facts, None if cab is NOT_REQUIRED else cab)

    def delivered(self, delivery: Delivery, secret: str) -> str:
        """The id of the approved run a business rule's notice is about, after its secret
        is checked; `ApprovalDeliveryUnauthenticated` (not audited here: the route tallies
        those), `ApprovalDeliveryInvalid` (audited `cab-approval-delivery-refused`) for an
        authenticated notice that is malformed or names no change a run waits on. The notice
        is recorded (`cab-approval-delivered`), never believed."""
        try:
            notice = read_approval_delivery(delivery, secret)
            run = self._run_waiting_on(notice.sys_id)
            if run is None:
                raise ApprovalDeliveryInvalid(
                    f"no approved run waits on change {notice.number} ({notice.sys_id})"
                )
        except ApprovalDeliveryUnauthenticated:
            raise
        except ApprovalDeliveryInvalid as err:
            self.store.append(
                CabApprovalDeliveryRefused(
                    actor="unauthenticated",
                    run_id="",
                    reason=err.reason,
                    delivery_digest=delivery.digest,
                )
            )
            raise
        self.store.append(
            CabApprovalDelivered(
                actor=SERVICENOW_ACTOR,
                run_id=run.id,
                number=notice.number,
                sys_id=notice.sys_id,
                said_approval=notice.approval,
                delivery_digest=delivery.digest,
            )
        )
        return run.id

    def fail(self, run_id: str, reason: str) -> None:
        """End the run `failed` with `reason`."""
        with self.store.atomic() as tx:
            tx.transition(run_id, RunState.FAILED, reason=reason, actor="factory")
        self.notify(run_id, RunState.FAILED, reason)

    def _run_waiting_on(self, sys_id: str) -> Run | None:
        return run_waiting_on(self.store, sys_id)

    def _cab_answer(self, run: Run, *, waiting_raises: bool) -> CabAnswer | None:
        """The CAB's approval of the run's change (`NOT_REQUIRED` when the gate does not
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
            self.store.append(
                CabApprovalCheckFailed(
                    actor="factory", run_id=run.id, number=number, error=str(err)
                )
            )
            if waiting_raises:
                raise CabCheckFailed(run.id, number, str(err)) from err
            return None
        except CabError as err:
            self.store.append(
                CabApprovalAwaited(
                    actor="factory",
                    run_id=run.id,
                    number=change.number if change else "",
                    approval=getattr(err, "approval", ""),
                    reason=str(err),
                )
            )
            if waiting_raises:
                raise
            return None
        if answer.approval == REJECTED:
            self._rejected(run, answer)
        return answer

    def _rejected(self, run: Run, answer: CabAnswer) -> None:
        change = answer.change
        reason = f"rejected by the CAB in {change.number}: {answer.reason}"
        with self.store.atomic() as tx:
            tx.append(
                CabRejected(
                    actor=SERVICENOW_ACTOR,
                    run_id=run.id,
                    number=change.number,
                    sys_id=change.sys_id,
                    reason=answer.reason,
                )
            )
            tx.transition(run.id, RunState.REJECTED, reason=reason, actor=SERVICENOW_ACTOR)
        self.notify(run.id, RunState.REJECTED, reason)

    def _finish(
        self, run: Run, approval: ApprovalRecord, facts: ReviewFacts, cab: CabAnswer | None
    ) -> None:
        """Write `approval.json` and move the run on: `handed_off`, or to the first sign-off."""
        document = approval_document(
            run,
            approval,
            attestation_digest=facts.attestation_digest,
            sponsor=facts.sponsor,
            change=cab,
            stages=self.stages,
        )
        write_approval(run, document)
        target = HANDED_TO[self.stages[0]] if self.stages else RunState.HANDED_OFF
        cab_said = f" (CAB approved {cab.change.number})" if cab else ""
        stage = STAGE_NAME.get(target)
        where = f"to {stage}" if stage else "for QA and UAT outside the factory"
        reason = f"handed off {where}: {run.branch} at {facts.commit[:12]}{cab_said}"
        with self.store.atomic() as tx:
            if cab is not None:
                tx.append(
                    CabApproved(
                        actor=SERVICENOW_ACTOR,
                        run_id=run.id,
                        number=cab.change.number,
                        sys_id=cab.change.sys_id,
                    )
                )
            tx.transition(run.id, target, reason=reason, actor="factory")
        self.notify(run.id, target, reason)


def run_waiting_on(store: RunRepository, sys_id: str) -> Run | None:
    """The `approved` run whose latest filed change request (`change-request-filed`) has
    ServiceNow `sys_id`, or None. Reads only approved runs (the indexed `runs.state`, at most
    `MAX_WAITING`, newest first) and their own audit events, so an old waiting run is found
    and the cost does not grow with the runs that are done."""
    for run_id in store.run_ids_in_state(RunState.APPROVED, limit=MAX_WAITING):
        change = filed_change(store.audit_events(run_id))
        if change is not None and change.sys_id == sys_id:
            run = store.get_run(run_id)
            if run is not None and run.state is RunState.APPROVED:
                return run
    return None
