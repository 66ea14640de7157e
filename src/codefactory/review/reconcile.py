"""Reconciling the forge with the factory: what reviewers and mergers did on the forge is
matched to the run, and what the factory cannot prove is an audit event and an alert.

- An approval (`ForgeEventKind.APPROVAL`) counts when the branch names a run of the same
  forge repository and the forge login is a person the directory knows (identity kind
  `github`, `gitlab`, `azure-devops`, `bitbucket`): the review desk then records it
  (`record_forge_approval`: segregation of duties, the signed head commit;
  `forge-approval-recorded` or `forge-approval-refused`). First the forge confirms it; on a
  forge that ties no approval to a commit (GitLab, Azure DevOps, Bitbucket) it counts only
  where the forge drops approvals on a new push into the base branch. An event naming
  several approvers (Azure DevOps' votes) is tried approver by approver until one is
  recorded. An abbreviated commit (Bitbucket Cloud) stands for the run's packaged commit
  only when it is a prefix of it; otherwise it matches nothing.
- Changes asked for (`CHANGES_REQUESTED`) are recorded (`forge-changes-requested`); the run
  stays in review (only a signed verdict rejects).
- A merge (`MERGE`) is `merge-recorded` when the merged head is the run's packaged commit and
  the factory recorded an approval of that commit (a `review-signed` approval or a
  `forge-approval-recorded`); otherwise `merge-unapproved` (forge, request, merged and
  packaged commits, who merged, why) and an alert to the security role. The run's state is
  left as it is: the forge merged, the factory approved nothing, and the audit log and the
  alert say so.
- An unknown run, another repository, or a login nobody in the directory holds is
  `forge-event-unmatched` with the reason; the delivery is kept as ignored.

Nothing here raises for bad input: every outcome is a `Reconciliation`, which intake stores
with the delivery in one transaction (`runs/intake.py`) before the alert is sent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from codefactory.audit.events import (
    ForgeApprovalRecorded,
    ForgeChangesRequested,
    ForgeEventUnmatched,
    ForgeWebhookEvent,
    MergeRecorded,
    MergeUnapproved,
    PullRequestOpened,
    ReviewSigned,
    typed,
)
from codefactory.audit.events import ForgeApprovalRefused as ForgeApprovalRefusedEvent
from codefactory.audit.port import AuditRecord
from codefactory.domain import AuditEvent, Run, RunState
from codefactory.identity.directory import Directory, IdentityKind, Person
from codefactory.identity.errors import IdentityError
from codefactory.review.errors import ForgeError, ReviewError
from codefactory.review.forge_events import ForgeEvent, ForgeEventKind
from codefactory.review.forges.confirm import approval_problem
from codefactory.review.forges.naming import NotPublishable, forge_repository
from codefactory.review.notifications import Alert
from codefactory.review.port import ForgeHost
from codefactory.secret_files import SecretUnreadable
from codefactory.triggers.text import shown

UNMATCHED = "forge-event-unmatched"
MERGE_UNAPPROVED = "merge-unapproved"
MERGE_RECORDED = "merge-recorded"
CHANGES_REQUESTED = "forge-changes-requested"
NOT_OURS = "not-the-factorys"
"""Outcome of a merge of another branch whose head is no run's packaged commit."""
APPROVAL_RECORDED = "forge-approval-recorded"
REQUEST_OPENED = "pull-request-opened"
MAX_APPROVERS = 10
"""Approvers of one event tried at most (Azure DevOps lists every vote): each is a forge call."""
APPROVAL_REFUSED = "forge-approval-refused"
SIGNED_REVIEW = "review-signed"

DONE, IGNORED, REFUSED = "done", "ignored", "refused"
RESET_SETTING = {
    "gitlab": "the project's \"Remove all approvals when commits are added to the source "
    'branch" (`reset_approvals_on_push`) and protect the branch',
    "azure-devops": 'a blocking "Minimum number of reviewers" policy on the branch with '
    '"Reset all approval votes" on new pushes (`resetOnSourcePush`)',
    "bitbucket": 'the branch restriction "Reset approvals when the source branch is '
    'modified" (Cloud `reset_pullrequest_approvals_on_change`) or "Unapprove automatically '
    'on new changes" (Data Center `unapproveOnUpdate`)',
}
"""What to turn on, per forge, so a push drops the approvals a request holds: without it
an approval the forge does not tie to a commit may be of an earlier head."""


class ForgeApprovals(Protocol):
    """The review desk's part reconciliation uses (`runs.review.ReviewDesk`)."""

    def record_forge_approval(
        self, run_id: str, *, person_id: str, commit: str, forge: str, request: str, review_id: str
    ) -> Run:
        """Record `person_id`'s approval of `commit` given on the forge; raises a
        `ReviewError` (audited `forge-approval-refused`) when it does not count."""
        ...


@dataclass(frozen=True, kw_only=True)
class Reconciliation:
    """What one forge event came to.

    `status` is the delivery's (`done`, `ignored`, `refused`); `event` the audit event still
    to be written with the delivery (None when the review desk wrote its own; intake adds the
    delivery id); `outcome` names the fact in every case; `alert` is sent to the security
    role once the delivery is stored."""

    status: str
    outcome: str
    reason: str
    run_id: str | None = None
    state: str | None = None
    event: ForgeWebhookEvent | ForgeApprovalRefusedEvent | None = None
    alert: Alert | None = None


@dataclass(kw_only=True)
class Reconciler:
    """Matches forge events to runs and people, and decides what each one means."""

    directory: Directory
    run_of: Callable[[str], Run | None]
    events_of: Callable[[str], Sequence[AuditRecord]]
    approvals: ForgeApprovals
    runs_with_commit: Callable[[str], Sequence[Run]] = lambda commit: ()
    """Runs whose packaged commit is this one (full, or abbreviated as a prefix): a merge of
    a branch that is no `factory/<run-id>` branch is matched by its head commit."""
    host: Callable[[str], ForgeHost] | None = None
    """The configured forge's adapter (a new one per use, closed after): every approval is
    confirmed with the forge itself before it counts. None (the local forge): no forge
    approval can be confirmed, so none counts."""
    base_branch: str = "main"
    """The branch the factory's requests merge into (`forge.base_branch`)."""
    hostname: str = ""
    """The configured forge's host name (`forge.base_url`'s)."""
    forges: frozenset[str] = frozenset()
    """The forges whose events count (the configured `forge.type`); empty: any forge (the
    local forge opens no requests, so only tests and migrations see such events)."""
    alerts: Callable[[Alert], object] | None = None
    """Sends an alert to the security role (`notifications.SecurityAlerts`); None: the
    alert is only in the audit log."""

    def reconcile(self, event: ForgeEvent) -> Reconciliation:
        """The outcome of `event`; never raises for what a forge or a person sent."""
        facts = _facts(event)
        if self.forges and event.forge not in self.forges:
            why = f"this factory publishes to {', '.join(sorted(self.forges))}, not {event.forge}"
            return _unmatched(facts, None, why)
        if event.kind is ForgeEventKind.MERGE:
            return self._merge_of(event, facts)
        run = self.run_of(event.run_id)
        if run is None:
            return _unmatched(facts, None, f"no run `{shown(event.run_id)}` is known here")
        mismatch = _other_repository(run, event, self.hostname)
        if mismatch:
            return _unmatched(facts, run, mismatch)
        event = _expanded(event, run)
        facts = _facts(event)
        if event.also and event.kind is ForgeEventKind.APPROVAL:
            return self._approvers(event, run, facts)
        try:
            person = self._person(event.forge, event.login)
        except (IdentityError, ValueError) as err:
            return _unmatched(facts, run, f"the {event.forge} login cannot be read: {err}")
        if person is None:
            why = f"the {event.forge} login '{shown(event.login)}' is not in the directory"
            return _unmatched(facts, run, why)
        if event.kind is ForgeEventKind.CHANGES_REQUESTED:
            # the webhook's word, not confirmed with the forge: the actor is the forge login
            reason = f"changes requested by {person.id} on {event.forge} #{event.request}"
            changes = ForgeChangesRequested(
                actor=_forge_actor(event), run_id=run.id, **facts, person=person.id
            )
            return Reconciliation(status=DONE, outcome=CHANGES_REQUESTED, reason=reason,
                                  run_id=run.id, state=run.state.value,
                                  event=changes)  # fmt: skip
        return self._approval(event, run, person)

    def _merge_of(self, event: ForgeEvent, facts: dict[str, Any]) -> Reconciliation:
        """A merge, matched to its run by the `factory/<run-id>` branch in the run's own
        repository, else by its merged head commit wherever it was merged (a copied branch,
        an unknown run id, another repository: each is a merge the factory did not approve).
        No run's commit: not the factory's."""
        run = self.run_of(event.run_id) if event.on_factory_branch else None
        off = ""
        if run is None or _other_repository(run, event, self.hostname):
            found = self.runs_with_commit(event.commit)
            if len(found) != 1:
                if run is None and event.on_factory_branch and not found:
                    why = f"no run `{shown(event.run_id)}` is known here"
                    return _unmatched(facts, None, why)
                return _not_ours(facts, event, ambiguous=len(found) > 1)
            run = found[0]
            off = _other_repository(run, event, self.hostname) or (
                f"merged from `{shown(event.branch)}`, not the run's branch {run.branch}"
                if event.branch != run.branch
                else ""
            )
        event = _expanded(event, run)
        try:
            person = self._person(event.forge, event.login)
        except (IdentityError, ValueError):
            person = None
        return self._merge(event, run, person, _facts(event), off=off)

    def _person(self, forge: str, login: str) -> Person | None:
        """The directory person holding `login` on `forge`; None for an empty login (a merge
        whose forge did not say who merged) or one nobody holds."""
        if not login.strip():
            return None
        return self.directory.resolve(IdentityKind(forge), login)

    def _approvers(self, event: ForgeEvent, run: Run, facts: dict[str, Any]) -> Reconciliation:
        """An approval naming several approvers (Azure DevOps' votes): each directory person
        among them in turn, until the desk records one; else the last refusal, or unmatched
        when nobody is in the directory."""
        outcome: Reconciliation | None = None
        # each login once, and a bounded few: every one is asked of the forge
        logins = list(dict.fromkeys((event.login, *event.also)))[:MAX_APPROVERS]
        for login in logins:
            try:
                person = self._person(event.forge, login)
            except (IdentityError, ValueError):
                continue
            if person is None:
                continue
            outcome = self._approval(replace(event, login=login, also=()), run, person)
            if outcome.outcome == APPROVAL_RECORDED:
                return outcome
        if outcome is not None:
            return outcome
        named = ", ".join(f"'{shown(login)}'" for login in logins)
        return _unmatched(facts, run, f"no {event.forge} approver ({named}) is in the directory")

    def send_alert(self, reconciliation: Reconciliation) -> None:
        """Send the reconciliation's alert, if any (after its audit event is stored)."""
        if reconciliation.alert is not None and self.alerts is not None:
            self.alerts(reconciliation.alert)

    def _approval(self, event: ForgeEvent, run: Run, person: Person) -> Reconciliation:
        problem = self._unconfirmed(event, run)
        if problem:
            reason = f"the {event.forge} approval by {person.id} does not count: {problem}"
            refused = ForgeApprovalRefusedEvent(
                actor=person.actor, run_id=run.id, **_facts(event), why=problem
            )
            return Reconciliation(status=REFUSED, outcome=APPROVAL_REFUSED, reason=reason,
                                  run_id=run.id, state=run.state.value,
                                  event=refused)  # fmt: skip
        try:
            moved = self.approvals.record_forge_approval(
                run.id,
                person_id=person.id,
                commit=event.commit,
                forge=event.forge,
                request=event.request,
                review_id=event.review_id,
            )
        except ReviewError as err:  # audited by the desk (`forge-approval-refused`)
            current = self.run_of(run.id) or run
            return Reconciliation(status=REFUSED, outcome=APPROVAL_REFUSED, reason=str(err),
                                  run_id=run.id, state=current.state.value)  # fmt: skip
        return Reconciliation(status=DONE, outcome=APPROVAL_RECORDED, reason=moved.reason,
                              run_id=run.id, state=moved.state.value)  # fmt: skip

    def _unconfirmed(self, event: ForgeEvent, run: Run) -> str:
        """Why the webhook's word alone is not taken (empty: the forge confirms it): the
        request must be the one the factory opened for the run (`pull-request-opened`),
        and the forge, asked with the factory's own token, must hold that approval by that
        login, of the packaged commit, on a request from the repository itself (no fork)
        into the configured base branch, by someone who did not open it
        (`review.forges.confirm.approval_problem`). A forge that ties no approval to a
        commit (all but GitHub) must also drop approvals on a push into the base branch
        (`_kept_across_pushes`): else an approval of a decoy head, the branch then pushed
        back to the packaged commit, would read as an approval of it. A webhook secret is
        shared by everyone who set up a hook; the forge's own record is not."""
        opened = {
            str(event.number)
            for event in map(typed, self.events_of(run.id))
            if isinstance(event, PullRequestOpened)
        }
        if not opened:
            return "the factory opened no request for this run on the forge"
        if event.request not in opened:
            numbers = ", ".join(f"#{n}" for n in sorted(opened))
            return (
                f"request #{shown(event.request, 40)} is not the one the factory opened ({numbers})"
            )
        if self.host is None:
            return "this factory publishes to no forge, so it cannot confirm the approval"
        try:
            name = forge_repository(run.repository, event.forge, hostname=self.hostname)
            host = self.host(run.sponsor)
            try:
                confirmed = host.confirm_approval(
                    name,
                    request=event.request,
                    reviewer_login=event.login,
                    review_id=event.review_id,
                )
                problem = approval_problem(
                    confirmed,
                    expected_repository=name,
                    base_branch=self.base_branch,
                    packaged_commit=run.head_commit,
                    reviewer_login=event.login,
                )
                if not problem and not confirmed.commit_bound:
                    problem = self._kept_across_pushes(host, name, event.forge)
            finally:
                close = getattr(host, "close", None)
                if callable(close):
                    close()
        except NotPublishable as err:
            return f"the run's repository has no {event.forge} name ({err.reason})"
        except (ForgeError, SecretUnreadable) as err:
            return f"the forge could not confirm it ({err}); approve again once it answers"
        return problem

    def _kept_across_pushes(self, host: ForgeHost, name: str, forge: str) -> str:
        """Why an approval the forge does not tie to a commit (`ConfirmedApproval.
        commit_bound` false: GitLab, Azure DevOps, Bitbucket) does not count; empty when
        the forge drops approvals on a new push to a request into the base branch
        (`ForgeHost.protection(...).dismisses_stale_approvals`: GitLab
        `reset_approvals_on_push`, Azure DevOps `resetOnSourcePush`, Bitbucket Cloud
        `reset_pullrequest_approvals_on_change`, Data Center `unapproveOnUpdate`).
        Otherwise the approval may have been given on a decoy head the branch was then
        pushed back from. A failure to read the setting refuses (fail closed)."""
        branch = self.base_branch.removeprefix("refs/heads/")
        try:
            rules = host.protection(name, branch)
        except (ForgeError, SecretUnreadable) as err:
            return (
                f"the forge could not say whether it drops approvals on a push to {branch} "
                f"({err}); approve again once it answers"
            )
        if rules.dismisses_stale_approvals:
            return ""
        turn_on = RESET_SETTING.get(forge, "the setting that drops approvals on a new push")
        unprotected = "" if rules.protected else f" ({branch} is not a protected branch)"
        return (
            f"{forge} keeps approvals across pushes on {branch}{unprotected}: turn on "
            f"{turn_on} so an approval cannot outlive the commit it was given on"
        )

    def _merge(
        self,
        event: ForgeEvent,
        run: Run,
        person: Person | None,
        facts: dict[str, Any],
        *,
        off: str = "",
    ) -> Reconciliation:
        data = {
            **facts,
            "merged_commit": event.commit,
            "merge_commit": event.merge_commit,
            "packaged_commit": run.head_commit,
            "merged_by": event.login,
            "merged_by_person": person.id if person is not None else "",
            "run_state": run.state.value,
        }
        why = off or self._unapproved(event, run)
        actor = _forge_actor(event)  # the webhook's word: who merged is not confirmed
        if not why:
            reason = f"merged on {event.forge} #{event.request} by {shown(event.login)}"
            recorded = MergeRecorded(actor=actor, run_id=run.id, **data)
            return Reconciliation(status=DONE, outcome=MERGE_RECORDED, reason=reason,
                                  run_id=run.id, state=run.state.value,
                                  event=recorded)  # fmt: skip
        reason = f"merged on {event.forge} #{event.request} without the factory's approval: {why}"
        alert = Alert(
            run_id=run.id,
            repository=run.repository,
            title=MERGE_UNAPPROVED,
            message=f"{shown(event.login)} merged {event.forge} request #{event.request} "
            f"({event.repository}, head {event.commit[:12]}); {why}. The run is "
            f"`{run.state.value}`.",
        )
        unapproved = MergeUnapproved(actor=actor, run_id=run.id, **data, why=why)
        return Reconciliation(status=DONE, outcome=MERGE_UNAPPROVED, reason=reason,
                              run_id=run.id, state=run.state.value, event=unapproved,
                              alert=alert)  # fmt: skip

    def _unapproved(self, event: ForgeEvent, run: Run) -> str:
        """Why the merge is not one the factory approved; empty when it is: the packaged
        commit, approved, and the run past every gate after the approval (the CAB, QA and
        UAT when configured): `handed_off` or `accepted`."""
        packaged = run.head_commit
        if not packaged:
            return "the run has no packaged commit"
        if event.commit != packaged:
            return f"the merged head {event.commit[:12]} is not the packaged commit {packaged[:12]}"
        if not any(_approves(typed(record), packaged) for record in self.events_of(run.id)):
            return f"the factory recorded no approval of the packaged commit {packaged[:12]}"
        if run.state not in MERGEABLE:
            return (
                f"the run is `{run.state.value}`: {NOT_YET.get(run.state, 'it ended unapproved')}"
            )
        return ""


MERGEABLE = frozenset({RunState.HANDED_OFF, RunState.ACCEPTED})
"""The states in which the factory's approvals of a run are complete."""
NOT_YET = {
    RunState.APPROVED: "approved, but not handed off (it waits for the CAB's approval)",
    RunState.IN_QA: "QA has not signed off",
    RunState.IN_UAT: "UAT has not signed off",
    RunState.REJECTED: "it was rejected",
}


def _forge_actor(event: ForgeEvent) -> str:
    """The actor of an act only the forge's webhook vouches for: `<forge>:<login>`, never a
    directory person's `user:` name (the event's `person` field says whom the login maps
    to)."""
    return f"{event.forge}:{shown(event.login) or 'unknown'}"


def _not_ours(facts: dict[str, Any], event: ForgeEvent, *, ambiguous: bool) -> Reconciliation:
    """A merge of another branch whose head is no run's packaged commit: not the factory's
    (the delivery is kept as ignored, no event of a run)."""
    why = (
        f"the merged head {event.commit[:12]} names more than one run's commit"
        if ambiguous
        else f"a merge of `{shown(event.branch)}`, whose head is no packaged commit"
    )
    unmatched = ForgeEventUnmatched(actor="reconcile", **facts, why=why) if ambiguous else None
    return Reconciliation(status=IGNORED, outcome=NOT_OURS, reason=why, run_id=None,
                          state=None, event=unmatched)  # fmt: skip


def _expanded(event: ForgeEvent, run: Run) -> ForgeEvent:
    """`event` naming the run's packaged commit in full when its abbreviated hash (Bitbucket
    Cloud's 12 digits) is a prefix of it; unchanged otherwise, so an abbreviated hash of
    any other commit never matches. The prefix is compared with the one commit the factory
    packaged, never looked up among the repository's commits, so it cannot be ambiguous."""
    packaged = run.head_commit
    if event.abbreviated and packaged and packaged.startswith(event.commit):
        return replace(event, commit=packaged, abbreviated=False)
    return event


def _approves(event: AuditEvent, commit: str) -> bool:
    match event:
        case ReviewSigned(verdict="approve", commit=approved):
            return approved == commit
        case ForgeApprovalRecorded(commit=approved):
            return approved == commit
    return False


def _facts(event: ForgeEvent) -> dict[str, Any]:
    """The event as audit data (forge text escaped)."""
    return {
        "forge": event.forge,
        "kind": event.kind.value,
        "repository": shown(event.repository, 300),
        "request": shown(event.request, 40),
        "branch": shown(event.branch, 300),
        "commit": event.commit,
        "login": shown(event.login),
        "review_id": shown(event.review_id, 40),
        **({"abbreviated_commit": True} if event.abbreviated else {}),
    }


def _other_repository(run: Run, event: ForgeEvent, hostname: str = "") -> str:
    """Why `event`'s repository is not `run`'s on that forge; empty when it is."""
    try:
        name = forge_repository(run.repository, event.forge, hostname=hostname)
    except NotPublishable as err:
        return f"the run's repository has no {event.forge} name ({err.reason})"
    if name.casefold() != event.repository.casefold():
        return (
            f"the event is about {shown(event.repository)}, the run's repository on "
            f"{event.forge} is {name}"
        )
    return ""


def _unmatched(facts: dict[str, Any], run: Run | None, why: str) -> Reconciliation:
    return Reconciliation(
        status=IGNORED,
        outcome=UNMATCHED,
        reason=why,
        run_id=run.id if run is not None else None,
        state=run.state.value if run is not None else None,
        event=ForgeEventUnmatched(
            actor="reconcile", run_id=run.id if run is not None else "", **facts, why=why
        ),
    )
