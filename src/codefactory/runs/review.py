"""The human end of the loop: a reviewer's verdict, the SoD gate, then the hand-off."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from codefactory.domain import Review, Run, RunState
from codefactory.identity.errors import IdentityError
from codefactory.identity.port import Delegation
from codefactory.review.errors import ReviewError
from codefactory.review.port import Forge
from codefactory.review.segregation import check_reviewer
from codefactory.runs.loop import RunObserver
from codefactory.store.runs import RunStore


class ReviewNotOpen(ReviewError):
    """The run is not waiting for review (names its state), or its branch moved."""


class ReviewDesk:
    """Records approvals and rejections; an approval hands the change off."""

    def __init__(
        self,
        *,
        store: RunStore,
        forge: Forge,
        observer: RunObserver | None = None,
        delegation: Delegation | None = None,
    ):
        self.store = store
        self.forge = forge
        self.observer = observer
        self.delegation = delegation

    def decide(self, run_id: str, *, reviewer: str, approve: bool, comment: str = "") -> Run:
        """Record a verdict by `reviewer`; refuses self-approval and a moved branch."""
        run = self.store.require_run(run_id)
        if run.state is not RunState.IN_REVIEW:
            raise ReviewNotOpen(f"run {run_id} is `{run.state.value}`, not waiting for review")
        trigger = self.store.get_trigger(run.trigger_id)
        try:
            check_reviewer(
                reviewer=reviewer,
                sponsor=run.sponsor,
                agent_id=run.agent_id,
                trigger_actor=trigger.actor if trigger else "",
                run_id=run_id,
            )
        except ReviewError as err:
            with self.store.atomic() as tx:
                tx.audit("review-refused", actor=f"user:{reviewer}", run_id=run_id, reason=str(err))
            raise
        self._require_unmoved(run)
        verdict = Review(
            run_id=run_id,
            reviewer=reviewer,
            approved=approve,
            comment=comment,
            at=datetime.now(UTC),
        )
        state = RunState.APPROVED if approve else RunState.REJECTED
        reason = f"{'approved' if approve else 'rejected'} by {reviewer}" + (
            f": {comment}" if comment else ""
        )
        with self.store.atomic() as tx:
            tx.record_review(verdict, commit=run.head_commit)
            tx.transition(run_id, state, reason=reason, actor=f"user:{reviewer}")
        self._notify(run_id, state, reason)
        if approve:
            self._hand_off(run, verdict)
        return self.store.require_run(run_id)

    def _require_unmoved(self, run: Run) -> None:
        head = self.forge.branch_head(run.repository, run.branch)
        if head != run.head_commit:
            raise ReviewNotOpen(
                f"branch {run.branch} moved to {head} after packaging at {run.head_commit}: "
                "an approval binds to the reviewed commit"
            )

    def _hand_off(self, run: Run, verdict: Review) -> None:
        """Hand the approved change to QA: the approval joins the package, the run ends.

        The delegation must have covered the change when the agent packaged it, and must not
        have been revoked since (its expiry bounds the agent's work, not the human review).
        """
        if self.delegation is not None:
            packaged = [c.at for c in run.history if c.state is RunState.PACKAGED]
            try:
                self.delegation.check(run, action="review:hand-off", at=packaged[-1])
            except (IdentityError, IndexError) as err:
                reason = f"not handed off: {err}"
                with self.store.atomic() as tx:
                    tx.transition(run.id, RunState.FAILED, reason=reason, actor="factory")
                self._notify(run.id, RunState.FAILED, reason)
                return
        record = {
            "run_id": run.id,
            "approved_by": verdict.reviewer,
            "approved_at": verdict.at.isoformat(),
            "commit": run.head_commit,
            "branch": run.branch,
            "sponsor": run.sponsor,
            "next_step": "QA and UAT on the branch, then merge by an accountable human",
        }
        if run.package_dir:
            target = Path(run.package_dir) / "approval.json"
            target.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        reason = f"handed off to QA: {run.branch} at {run.head_commit[:12]}"
        with self.store.atomic() as tx:
            tx.transition(run.id, RunState.HANDED_OFF, reason=reason, actor="factory")
        self._notify(run.id, RunState.HANDED_OFF, reason)

    def _notify(self, run_id: str, state: RunState, reason: str) -> None:
        if self.observer is not None:
            self.observer(run_id, state, reason)
