"""QA and UAT sign-offs: signed statements that move an approved change to `accepted`.

On the regulated track (`review.sign_offs`, e.g. `["qa", "uat"]`) an approved change is
handed to QA (`in_qa`), then UAT (`in_uat`); each stage ends with a sign-off statement
(`identity.statements.sign_off_statement`) over the run, its signed head commit and package
digest, the stage and the verdict (`accept` or `reject`, a rejection with its reason), signed
with `ssh-keygen -Y sign -n codefactory-sign-off` by a directory person holding that stage's
role (`qa`, `uat`) who is neither the sponsor, the agent, the requester nor the person who
caused the trigger (NIST SP 800-53 AC-5, as for reviews). The statement is kept in the
package under `reviews/` (`<n>-qa-accept.json`, its `.sig` and `.allowed_signers`) and is a
`sign-off-signed` audit event; everything refused is `sign-off-refused` with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from codefactory.audit.events import ForgeApprovalRecorded, ReviewSigned, SignOffSigned, typed
from codefactory.audit.events import SignOffRefused as SignOffRefusedEvent
from codefactory.domain import Run, RunState
from codefactory.identity.directory import Role
from codefactory.identity.statements import (
    SIGN_OFF_STAGES,
    SIGN_OFF_TYPE,
    StatementRefused,
    StatementVerifier,
    VerifiedStatement,
    refuse_non_human,
    sign_off_statement,
)
from codefactory.package.manifest import PackageAltered, keep_verdict
from codefactory.review.errors import FactsRefused, ReviewError, SelfApprovalRefused
from codefactory.review.segregation import check_reviewer, same_person
from codefactory.review.signed_facts import ReviewFacts, SignedFacts
from codefactory.store.port import RunRepository

SIGNED_EVENT = SignOffSigned.NAME
REFUSED_EVENT = SignOffRefusedEvent.NAME
STAGE_STATE = {"qa": RunState.IN_QA, "uat": RunState.IN_UAT}
STAGE_ROLE = {"qa": Role.QA, "uat": Role.UAT}
STAGE_NAME = {"qa": "QA", "uat": "UAT"}


class SignOffError(ReviewError):
    """A sign-off that cannot be taken; names the run and why."""

    def __init__(self, run_id: str, reason: str) -> None:
        super().__init__(f"sign-off on run {run_id} refused: {reason}")
        self.run_id = run_id
        self.reason = reason


class SignOffNotOpen(SignOffError):
    """The run is not waiting for this stage's sign-off (names its state)."""


class SignOffRefused(SignOffError):
    """A signed sign-off that does not count: another key or person, no `qa`/`uat` role,
    another run, commit, package, stage or verdict, stale, replayed, a rejection without a
    reason."""


Notify = Callable[[str, RunState, str], None]


def segregation_parties(run: Run, facts: ReviewFacts) -> dict[str, str]:
    """The parties `check_reviewer` holds an approver or signer apart from, as signed: the
    sponsor, the requester and who caused the trigger come from the verified delegation token
    (`SignedFacts`), never from editable rows."""
    return {
        "sponsor": facts.sponsor,
        "agent_id": run.agent_id,
        "trigger_actor": facts.requested_by,
        "caused_by": facts.caused_by,  # who ran the trigger: `user:<id>`
        "run_id": run.id,
    }


Refused = Callable[[str, str, str], None]
"""Audits a refused statement: (reason, statement digest, key fingerprint)."""


def verified_by_party(
    statements: StatementVerifier,
    *,
    run: Run,
    facts: ReviewFacts,
    statement: bytes,
    signature: str,
    claimed: str,
    statement_type: str,
    role: Role,
    expect: dict[str, str],
    used: Callable[[str], bool],
    refused: Refused,
    refusal: Callable[[str], ReviewError],
    then: Callable[[VerifiedStatement], None] = lambda verified: None,
) -> VerifiedStatement:
    """A statement of `statement_type` over this run's signed commit and package (plus
    `expect`), signed by `claimed`'s own key, who holds `role` and, as claimed and as
    signer, is no party to the change (`check_reviewer`); `then` adds the caller's own
    checks. Every refusal is audited through `refused` and raised: a statement or package
    that does not hold as `refusal(reason)`, a `ReviewError` as itself."""
    parties = segregation_parties(run, facts)
    digest, fingerprint = "", ""
    try:
        check_reviewer(reviewer=claimed, **parties)
        verified = statements.verify(
            statement,
            signature,
            statement_type=statement_type,
            claimed=claimed,
            role=role,
            expect={
                "run_id": run.id,
                "commit": facts.commit,
                "package_digest": facts.package_digest,
                **expect,
            },
            used=used,
        )
        digest, fingerprint = verified.digest, verified.fingerprint
        # the signer, not only the claimed name, is held to segregation of duties
        check_reviewer(reviewer=verified.person.actor, **parties)
        then(verified)
    except (StatementRefused, PackageAltered) as err:
        reason = getattr(err, "reason", str(err))
        refused(str(err), getattr(err, "digest", ""), getattr(err, "fingerprint", ""))
        raise refusal(reason) from err
    except ReviewError as err:
        refused(str(err), digest, fingerprint)
        raise
    return verified


class SignOffDesk:
    """Takes signed QA and UAT sign-offs for runs on the regulated track."""

    def __init__(
        self,
        *,
        store: RunRepository,
        facts: SignedFacts,
        statements: StatementVerifier,
        stages: tuple[str, ...],
        notify: Notify,
    ) -> None:
        """`stages`: the configured sign-offs in order (`("qa", "uat")`); `notify`: the
        observer of each state change."""
        self.store = store
        self.facts = facts
        self.statements = statements
        self.stages = stages
        self.notify = notify

    def statement_for(
        self, run_id: str, *, stage: str, signer: str, accept: bool, reason: str = ""
    ) -> bytes:
        """The statement `signer` signs for `stage` on the run as it is now; `SignOffNotOpen`
        when the run does not wait for that stage, `FactsRefused` (audited) when its signed
        facts do not hold."""
        run = self._open(run_id, stage, signer)
        facts = self._facts(run, signer)
        self._check_four_eyes(run.id, signer, signer)  # told before signing, not after
        return sign_off_statement(
            run_id=run.id,
            commit=facts.commit,
            package_digest=facts.package_digest,
            stage=stage,
            verdict="accept" if accept else "reject",
            signer=refuse_non_human(signer),
            reason=reason,
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
        """Record `signer`'s signed sign-off of `stage` (`qa`, `uat`); an acceptance moves
        the run to the next stage or `accepted`, a rejection ends it `rejected` with the
        signer's reason. Refuses, audited (`sign-off-refused`): `SignOffNotOpen`,
        `SignOffRefused`, `SegregationViolation`, `FactsRefused`."""
        run = self._open(run_id, stage, signer)
        facts = self._facts(run, signer)
        verified = self._verify(run, facts, stage, statement, signature, signer, accept)
        verdict = str(verified.fields["verdict"])
        kept = keep_verdict(
            Path(run.package_dir),
            verdict=f"{stage}-{verdict}",
            body=verified.body,
            signature=verified.signature,
            allowed_signers_line=verified.allowed_signers_line,
        )
        target, reason = self._outcome(stage, verified)
        with self.store.atomic() as tx:
            tx.append(
                SignOffSigned(
                    actor=verified.person.actor,
                    run_id=run_id,
                    stage=stage,
                    verdict=verdict,
                    reason=str(verified.fields.get("reason", "")),
                    statement_digest=verified.digest,
                    key_fingerprint=verified.fingerprint,
                    package_digest=facts.package_digest,
                    commit=facts.commit,
                    statement=str(kept.relative_to(run.package_dir)),
                    allowed_signers=verified.allowed_signers_line,
                )
            )
            tx.transition(run_id, target, reason=reason, actor=verified.person.actor)
        self.notify(run_id, target, reason)
        return self.store.require_run(run_id)

    def _outcome(self, stage: str, verified: VerifiedStatement) -> tuple[RunState, str]:
        name, who = STAGE_NAME[stage], verified.person.id
        if verified.fields["verdict"] == "reject":
            return RunState.REJECTED, f"rejected in {name} by {who}: {verified.fields['reason']}"
        later = self.stages[self.stages.index(stage) + 1 :]
        if later:
            return STAGE_STATE[later[0]], f"{name} signed off by {who}; in {STAGE_NAME[later[0]]}"
        return RunState.ACCEPTED, f"accepted: {name} signed off by {who}"

    def _open(self, run_id: str, stage: str, signer: str) -> Run:
        run = self.store.require_run(run_id)
        problem = ""
        if stage not in SIGN_OFF_STAGES:
            problem = f"the stage is one of {', '.join(SIGN_OFF_STAGES)}, not {stage!r}"
        elif stage not in self.stages:
            problem = f"{STAGE_NAME[stage]} sign-off is not a stage here (review.sign_offs)"
        elif run.state is not STAGE_STATE[stage]:
            problem = f"the run is `{run.state.value}`, not `{STAGE_STATE[stage].value}`"
        if problem:
            error = SignOffNotOpen(run_id, problem)
            self._refused(run_id, signer, stage, str(error), "", "")
            raise error
        return run

    def _facts(self, run: Run, signer: str) -> ReviewFacts:
        try:
            return self.facts.establish(run, self.store.get_trigger(run.trigger_id))
        except FactsRefused as err:
            self._refused(run.id, signer, "", err.reason, "", "")
            raise

    def _verify(
        self,
        run: Run,
        facts: ReviewFacts,
        stage: str,
        statement: bytes,
        signature: str,
        signer: str,
        accept: bool,
    ) -> VerifiedStatement:
        def stage_rules(verified: VerifiedStatement) -> None:
            self._check_four_eyes(
                run.id, signer, verified.person.actor, fingerprint=verified.fingerprint
            )
            if not accept and not str(verified.fields.get("reason", "")).strip():
                raise SignOffRefused(run.id, "a rejection names its reason (--reason)")

        return verified_by_party(
            self.statements,
            run=run,
            facts=facts,
            statement=statement,
            signature=signature,
            claimed=signer,
            statement_type=SIGN_OFF_TYPE,
            role=STAGE_ROLE[stage],
            expect={"stage": stage, "verdict": "accept" if accept else "reject"},
            used=lambda found: self._used(run.id, found),
            refused=lambda why, digest, key: self._refused(run.id, signer, stage, why, digest, key),
            refusal=lambda reason: SignOffRefused(run.id, reason),
            then=stage_rules,
        )

    def _check_four_eyes(
        self, run_id: str, claimed: str, signer: str, *, fingerprint: str = ""
    ) -> None:
        """Each stage is another person's: whoever approved the change (a signed verdict or
        a forge approval) or signed an earlier stage may not sign this one, under any name:
        the same key signing again is the same person. The earlier signers come from the
        run's audit events, which the log's checkpoints protect.
        Raises `SelfApprovalRefused`."""
        for event in map(typed, self.store.audit_events(run_id)):
            match event:
                case ReviewSigned(verdict="approve" | "accept", key_fingerprint=key):
                    role = "reviewer who approved it"
                case ForgeApprovalRecorded():
                    role, key = "reviewer who approved it", ""
                case SignOffSigned(verdict="approve" | "accept", key_fingerprint=key, stage=stage):
                    role = f"{stage} signer"
                case _:
                    continue
            same_key = bool(fingerprint) and key == fingerprint
            if same_key or same_person(event.actor, signer) or same_person(event.actor, claimed):
                raise SelfApprovalRefused(claimed, role, run_id)

    def _refused(
        self, run_id: str, signer: str, stage: str, reason: str, digest: str, fingerprint: str
    ) -> None:
        self.store.append(
            SignOffRefusedEvent(
                actor="unauthenticated",
                run_id=run_id,
                claimed_signer=signer.encode("unicode_escape").decode("ascii")[:120],
                stage=stage.encode("unicode_escape").decode("ascii")[:20],
                reason=reason,
                statement_digest=digest,
                key_fingerprint=fingerprint,
            )
        )

    def _used(self, run_id: str, digest: str) -> bool:
        return any(
            event.statement_digest == digest
            for event in map(typed, self.store.audit_events(run_id))
            if isinstance(event, SignOffSigned)
        )
