"""The human end of the loop: a reviewer's signed verdict, the SoD gate, then the hand-off.

A verdict counts only as a statement (`identity.statements.review_statement`) over this run,
its head commit and its package digest, signed with a key the directory lists for a person
holding the `reviewer` role who is neither the sponsor, the agent, the requester nor the
person who caused the trigger. The statement and its signature are kept in the package.

The run's commit, package digest, sponsor, requester and the person who caused the trigger
are never taken from `factory.db` rows alone: `review.signed_facts.SignedFacts` derives them
from the agent's and the issuer's signatures (pinned keys), before the verdict and again
before the hand-off; rows that disagree refuse the review (`FactsRefused`, audited as
`review-refused`).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from codefactory.domain import Review, Run, RunState
from codefactory.identity.directory import FileDirectory, Role
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
from codefactory.review.errors import FactsRefused, ReviewError, VerdictRefused
from codefactory.review.port import Forge
from codefactory.review.segregation import check_reviewer
from codefactory.review.signed_facts import ReviewFacts, SignedFacts
from codefactory.runs.loop import RunObserver
from codefactory.store.runs import RunStore


class ReviewNotOpen(ReviewError):
    """The run is not waiting for review (names its state), or its branch moved."""


SIGNED_EVENT = "review-signed"
"""The audit event of an accepted verdict: statement digest, key fingerprint, package digest."""
REFUSED_EVENT = "review-refused"


class ReviewDesk:
    """Records signed approvals and rejections; an approval hands the change off."""

    def __init__(
        self,
        *,
        store: RunStore,
        forge: Forge,
        facts: SignedFacts,
        observer: RunObserver | None = None,
        delegation: Delegation | None = None,
        statements: StatementVerifier | None = None,
    ):
        self.store = store
        self.forge = forge
        self.facts = facts
        self.observer = observer
        self.delegation = delegation
        self.statements = statements or StatementVerifier(FileDirectory(None))

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
        what the agent and the issuer signed."""
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
            self._hand_off(run, verdict, verified, reviewer)
        return self.store.require_run(run_id)

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
        # the parties come from the verified delegation token, never from editable rows
        parties = {
            "sponsor": facts.sponsor,
            "agent_id": run.agent_id,
            "trigger_actor": facts.requested_by,
            "caused_by": facts.caused_by,  # who ran the trigger: `user:<id>`
            "run_id": run.id,
        }
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

    def _hand_off(
        self, run: Run, verdict: Review, verified: VerifiedStatement, reviewer: str
    ) -> None:
        """Hand the approved change to QA: the approval joins the package, the run ends.

        The signed facts are established again (the branch, the package and the rows must
        still be what the reviewer approved), the delegation must have covered the change
        when the agent packaged it, and must not have been revoked since (its expiry bounds
        the agent's work, not the human review).
        """
        try:
            facts = self.facts.establish(run, self.store.get_trigger(run.trigger_id))
            if (facts.commit, facts.package_digest) != (
                verified.fields["commit"],
                verified.fields["package_digest"],
            ):
                raise FactsRefused(run.id, "the commit or package changed during the review")
            if self.delegation is not None:
                packaged = [c.at for c in run.history if c.state is RunState.PACKAGED]
                self.delegation.check(run, action="review:hand-off", at=packaged[-1])
        except FactsRefused as err:
            self._refused(run.id, reviewer, err.reason, verified.digest, verified.fingerprint)
            self._fail(run.id, f"not handed off: {err.reason}")
            return
        except (IdentityError, IndexError) as err:
            self._fail(run.id, f"not handed off: {err}")
            return
        record = {
            "run_id": run.id,
            "approved_by": verdict.reviewer,
            "approved_at": verdict.at.isoformat(),
            "statement_digest": verified.digest,
            "key_fingerprint": verified.fingerprint,
            "package_digest": verified.fields["package_digest"],
            "attestation_digest": facts.attestation_digest,
            "commit": facts.commit,
            "branch": run.branch,
            "sponsor": facts.sponsor,
            "next_step": "QA and UAT on the branch, then merge by an accountable human",
        }
        if run.package_dir:
            target = Path(run.package_dir) / "approval.json"
            target.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        reason = f"handed off to QA: {run.branch} at {facts.commit[:12]}"
        with self.store.atomic() as tx:
            tx.transition(run.id, RunState.HANDED_OFF, reason=reason, actor="factory")
        self._notify(run.id, RunState.HANDED_OFF, reason)

    def _fail(self, run_id: str, reason: str) -> None:
        with self.store.atomic() as tx:
            tx.transition(run_id, RunState.FAILED, reason=reason, actor="factory")
        self._notify(run_id, RunState.FAILED, reason)

    def _notify(self, run_id: str, state: RunState, reason: str) -> None:
        if self.observer is not None:
            self.observer(run_id, state, reason)
