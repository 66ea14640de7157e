"""Review and merge events a forge sends back about the factory's own requests.

They arrive on the trigger endpoints (`POST /webhooks/github`, `/webhooks/gitlab`,
`/webhooks/azure-devops`, `/webhooks/bitbucket`), authenticated as every delivery is
(`triggers/github.py`, `gitlab.py`, `azure_devops.py`, `bitbucket.py`), and never start a
run: intake hands them to reconciliation (`review/reconcile.py`).

| forge | event | read as |
| --- | --- | --- |
| GitHub | `pull_request_review`, action `submitted`, `review.state` `approved` | approval |
| GitHub | `pull_request_review` `submitted`, `review.state` `changes_requested` | changes asked |
| GitHub | `pull_request`, action `closed`, `pull_request.merged: true` | merge |
| GitLab | `Merge Request Hook`, `object_attributes.action` `approved` / `approval` | approval |
| GitLab | `Merge Request Hook`, `object_attributes.action` `merge` | merge |
| Azure DevOps | `git.pullrequest.updated`, a reviewer's `vote` 10 | approval |
| Azure DevOps | `git.pullrequest.merged`, `resource.status` `completed` | merge |
| Bitbucket Cloud | `pullrequest:approved` / `:changes_request_created` | approval / changes |
| Bitbucket Cloud | `pullrequest:fulfilled` | merge |
| Bitbucket DC | `pr:reviewer:approved` / `pr:reviewer:needs_work` | approval / changes |
| Bitbucket DC | `pr:merged` | merge |

Fields (GitHub *Webhook events and payloads*; GitLab *Webhook events*, "Merge request
events"): the approved commit is `review.commit_id` / `object_attributes.last_commit.id`, the
merged head `pull_request.head.sha` / `object_attributes.last_commit.id`, the person
`review.user.login`, `merged_by.login` / `user.username`, the request
`pull_request.number` / `object_attributes.iid`, the branch `pull_request.head.ref` /
`object_attributes.source_branch`, the repository `repository.full_name` /
`project.path_with_namespace`. Only a `factory/<run-id>` branch is the factory's; every
other review or merge is ignored with the reason, as unrelated deliveries are.

Azure DevOps (learn.microsoft.com/azure/devops/service-hooks/events, "Pull request updated"
and "Pull request merge attempted"; the `resource` is a `GitPullRequest`): the branch is
`resource.sourceRefName` (`refs/heads/factory/<run-id>`), the repository
`resource.repository.project.name` / `resource.repository.name`, the request
`resource.pullRequestId`, the head `resource.lastMergeSourceCommit.commitId`, the merge commit
`resource.lastMergeCommit.commitId`, who merged `resource.closedBy.uniqueName`. The event
does not say whose vote changed: every person (`isContainer` not true) in
`resource.reviewers` whose `vote` is 10 ("approved"; 5, "approved with suggestions", is not
counted) is an approver, by `uniqueName`, and reconciliation tries them in order. A
`git.pullrequest.merged` whose `resource.status` is not `completed` is a merge attempt that
merged nothing and is ignored.

Bitbucket Cloud (support.atlassian.com/bitbucket-cloud/docs/event-payloads, "Pull request
events"): branch `pullrequest.source.branch.name`, repository `repository.full_name`
(`workspace/repo`), request `pullrequest.id`, who `approval.user` / `changes_request.user` /
`pullrequest.closed_by` (else `actor`) by `account_id`, head
`pullrequest.source.commit.hash`, merge commit `pullrequest.merge_commit.hash`. Cloud sends
12-digit abbreviated hashes: they are kept short here (`ForgeEvent.abbreviated`) and matched
by reconciliation only as a prefix of the run's own packaged commit, never looked up.

Bitbucket Data Center (confluence.atlassian.com/bitbucketserver, "Event payload", pull
request events): branch `pullRequest.fromRef.displayId`, repository
`pullRequest.toRef.repository.project.key` / `.slug`, request `pullRequest.id`, head
`pullRequest.fromRef.latestCommit` (full), merge commit `pullRequest.properties.mergeCommit.id`,
who `participant.user.name` (approval, needs work) or `actor.name` (merge).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any

from codefactory.triggers.errors import DeliveryInvalid
from codefactory.triggers.payload import (
    delivered_object,
    dig,
    items,
    json_object,
    mapping,
    required,
    text,
)
from codefactory.triggers.port import Delivery

BRANCH_PREFIX = "factory/"
"""The branch every run's change is pushed to: `factory/<run-id>`."""
_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_ABBREVIATED = re.compile(r"[0-9a-f]{12,40}")
"""Bitbucket Cloud's hashes in webhook payloads: 12 digits (or more, should it send more)."""
_AZURE_APPROVED = 10
"""`IdentityRefWithVote.vote`: 10 approved, 5 approved with suggestions, 0 no vote, -5
waiting for the author, -10 rejected."""
_BITBUCKET_CLOUD = {
    "pullrequest:approved": "approval",
    "pullrequest:changes_request_created": "changes-requested",
    "pullrequest:fulfilled": "merge",
}
_BITBUCKET_DC = {
    "pr:reviewer:approved": "approval",
    "pr:reviewer:needs_work": "changes-requested",
    "pr:merged": "merge",
}
_GITHUB_EVENTS = frozenset({"pull_request_review", "pull_request"})
_GITLAB_APPROVALS = frozenset({"approved", "approval"})


class ForgeEventKind(enum.StrEnum):
    """What a forge event says about a request."""

    APPROVAL = "approval"
    CHANGES_REQUESTED = "changes-requested"
    MERGE = "merge"


@dataclass(frozen=True, kw_only=True)
class ForgeEvent:
    """One review or merge on a `factory/<run-id>` branch, as the signed delivery says."""

    kind: ForgeEventKind
    forge: str
    """`github`, `gitlab`, `azure-devops` or `bitbucket`: also the directory identity kind
    of `login`."""
    repository: str
    """The forge's name of the repository (`owner/name`, `group/sub/project`)."""
    request: str
    """The pull request number (GitHub) or merge request iid (GitLab)."""
    branch: str
    commit: str
    """Approval: the head commit the review was given on; merge: the merged head commit."""
    login: str
    """Who reviewed or merged, as the forge names them (`review.user.login`,
    `merged_by.login`, `user.username`, `uniqueName`, `account_id`, `user.name`)."""
    also: tuple[str, ...] = ()
    """Further approvers the event names (Azure DevOps lists every vote, not whose changed):
    reconciliation tries `login`, then these, until one approval counts."""
    abbreviated: bool = False
    """`commit` is an abbreviated hash (Bitbucket Cloud): it names the packaged commit only
    as a prefix of it."""
    review_id: str = ""
    """GitHub's `review.id`; GitLab approvals carry none."""
    merge_commit: str = ""
    """Merge: the commit the merge made on the base branch (`merge_commit_sha`), when sent."""

    @property
    def on_factory_branch(self) -> bool:
        """The request's branch is a `factory/<run-id>` branch. Only a merge is read from
        any other branch: the factory's commit merged through a copy of its branch is
        reconciled by the commit (`Reconciler`)."""
        return self.branch.startswith(BRANCH_PREFIX)

    @property
    def run_id(self) -> str:
        """The run the branch names (`factory/<run-id>` → `<run-id>`); "" off such a branch."""
        return self.branch.removeprefix(BRANCH_PREFIX) if self.on_factory_branch else ""


def read_forge_event(delivery: Delivery, delivery_id: str) -> ForgeEvent | str | None:
    """The review or merge event in a verified `delivery`: a `ForgeEvent`; a string saying
    why a review or merge event is not counted (another branch, a comment-only review, a
    pull request closed unmerged); None for any other delivery (the trigger reading stands).
    Raises `DeliveryInvalid` when an event on a `factory/` branch lacks a field it needs or
    names a commit that is no 40- or 64-digit hex id."""
    if delivery.source == "github":
        kind = delivery.header("X-GitHub-Event").strip()
        if kind not in _GITHUB_EVENTS:
            return None
        doc = delivered_object(delivery, delivery_id)
        if kind == "pull_request_review":
            return _github_review(delivery_id, doc)
        return _github_merge(delivery_id, doc)
    if delivery.source == "gitlab":
        doc = json_object(delivery, delivery_id)
        if text(doc, "object_kind") != "merge_request":
            return None
        return _gitlab(delivery_id, doc)
    if delivery.source == "azure-devops":
        doc = json_object(delivery, delivery_id)
        return _azure_devops(delivery_id, doc)
    if delivery.source == "bitbucket":
        key = delivery.header("X-Event-Key").strip()
        if key in _BITBUCKET_CLOUD:
            doc = json_object(delivery, delivery_id)
            return _bitbucket_cloud(delivery_id, ForgeEventKind(_BITBUCKET_CLOUD[key]), doc)
        if key in _BITBUCKET_DC:
            doc = json_object(delivery, delivery_id)
            return _bitbucket_dc(delivery_id, ForgeEventKind(_BITBUCKET_DC[key]), doc)
    return None


def _not_ours(branch: str) -> str:
    return f"the branch `{branch[:120]}` is no {BRANCH_PREFIX}<run-id> branch: not the factory's"


def _commit(source: str, delivery_id: str, doc: Any, *path: str) -> str:
    value = required(source, delivery_id, doc, *path).lower()
    if not _COMMIT.fullmatch(value):
        raise DeliveryInvalid(source, delivery_id, f"`{'.'.join(path)}` is no commit id")
    return value


def _github_review(delivery_id: str, doc: dict[str, Any]) -> ForgeEvent | str:
    action = text(doc, "action", limit=32)
    if action != "submitted":
        return f"only a submitted review counts (this one: {action or 'none'})"
    # webhook payloads spell the state in lower case; the REST API in upper case
    state = text(doc, "review", "state", limit=32).lower()
    kinds = {
        "approved": ForgeEventKind.APPROVAL,
        "changes_requested": ForgeEventKind.CHANGES_REQUESTED,
    }
    if state not in kinds:
        return f"a `{state or 'none'}` review neither approves nor asks for changes"
    branch = text(doc, "pull_request", "head", "ref", limit=300)
    if not branch.startswith(BRANCH_PREFIX):
        return _not_ours(branch)
    return ForgeEvent(
        kind=kinds[state],
        forge="github",
        repository=required("github", delivery_id, doc, "repository", "full_name"),
        request=required("github", delivery_id, doc, "pull_request", "number"),
        branch=branch,
        commit=_commit("github", delivery_id, doc, "review", "commit_id"),
        login=required("github", delivery_id, doc, "review", "user", "login"),
        review_id=required("github", delivery_id, doc, "review", "id"),
    )


def _github_merge(delivery_id: str, doc: dict[str, Any]) -> ForgeEvent | str:
    action = text(doc, "action", limit=32)
    if action != "closed":
        return f"only a merged pull request is reconciled (this one: {action or 'none'})"
    if dig(doc, "pull_request", "merged") is not True:
        return "the pull request was closed without merging"
    branch = text(doc, "pull_request", "head", "ref", limit=300)  # any: matched by commit
    merged_by = text(doc, "pull_request", "merged_by", "login") or text(doc, "sender", "login")
    return ForgeEvent(
        kind=ForgeEventKind.MERGE,
        forge="github",
        repository=required("github", delivery_id, doc, "repository", "full_name"),
        request=required("github", delivery_id, doc, "pull_request", "number"),
        branch=branch,
        commit=_commit("github", delivery_id, doc, "pull_request", "head", "sha"),
        login=merged_by.strip(),
        merge_commit=text(doc, "pull_request", "merge_commit_sha", limit=64),
    )


def _gitlab(delivery_id: str, doc: dict[str, Any]) -> ForgeEvent | str:
    action = text(doc, "object_attributes", "action", limit=32)
    if action in _GITLAB_APPROVALS:
        kind = ForgeEventKind.APPROVAL
    elif action == "merge":
        kind = ForgeEventKind.MERGE
    else:
        return f"a merge request `{action or 'none'}` is neither an approval nor a merge"
    branch = text(doc, "object_attributes", "source_branch", limit=300)
    if not branch.startswith(BRANCH_PREFIX) and kind is not ForgeEventKind.MERGE:
        return _not_ours(branch)
    return ForgeEvent(
        kind=kind,
        forge="gitlab",
        repository=required("gitlab", delivery_id, doc, "project", "path_with_namespace"),
        request=required("gitlab", delivery_id, doc, "object_attributes", "iid"),
        branch=branch,
        commit=_commit("gitlab", delivery_id, doc, "object_attributes", "last_commit", "id"),
        login=required("gitlab", delivery_id, doc, "user", "username"),
        merge_commit=text(doc, "object_attributes", "merge_commit_sha", limit=64),
    )


def _azure_devops(delivery_id: str, doc: dict[str, Any]) -> ForgeEvent | str | None:
    kind = text(doc, "eventType", limit=64)
    if kind not in ("git.pullrequest.updated", "git.pullrequest.merged"):
        return None
    pull = mapping(doc, "resource")
    branch = text(pull, "sourceRefName", limit=300).removeprefix("refs/heads/")
    if not branch.startswith(BRANCH_PREFIX) and kind != "git.pullrequest.merged":
        return _not_ours(branch)
    if kind == "git.pullrequest.merged":
        if text(pull, "status", limit=32) != "completed":
            return "a merge attempt that completed nothing (`resource.status` is not completed)"
        return _azure_event(delivery_id, pull, branch, ForgeEventKind.MERGE,
                            (text(pull, "closedBy", "uniqueName", limit=256).strip(),))  # fmt: skip
    approvers = tuple(
        text(reviewer, "uniqueName", limit=256).strip()
        for reviewer in items(pull, "reviewers")
        if dig(reviewer, "vote") == _AZURE_APPROVED and dig(reviewer, "isContainer") is not True
    )
    if not any(approvers):
        return "no person's vote in `resource.reviewers` is 10 (approved)"
    return _azure_event(delivery_id, pull, branch, ForgeEventKind.APPROVAL,
                        tuple(a for a in approvers if a))  # fmt: skip


def _azure_event(
    delivery_id: str,
    pull: dict[str, Any],
    branch: str,
    kind: ForgeEventKind,
    logins: tuple[str, ...],
) -> ForgeEvent:
    source = "azure-devops"
    project = required(source, delivery_id, pull, "repository", "project", "name")
    name = required(source, delivery_id, pull, "repository", "name")
    merge_commit = text(pull, "lastMergeCommit", "commitId", limit=64)
    return ForgeEvent(
        kind=kind,
        forge=source,
        repository=f"{project}/{name}",
        request=required(source, delivery_id, pull, "pullRequestId"),
        branch=branch,
        commit=_commit(source, delivery_id, pull, "lastMergeSourceCommit", "commitId"),
        login=logins[0],
        also=logins[1:],
        merge_commit=merge_commit if kind is ForgeEventKind.MERGE else "",
    )


def _bitbucket_cloud(
    delivery_id: str, kind: ForgeEventKind, doc: dict[str, Any]
) -> ForgeEvent | str:
    pull = mapping(doc, "pullrequest")
    branch = text(pull, "source", "branch", "name", limit=300)
    if not branch.startswith(BRANCH_PREFIX) and kind is not ForgeEventKind.MERGE:
        return _not_ours(branch)
    who = {
        ForgeEventKind.APPROVAL: ("approval", "user"),
        ForgeEventKind.CHANGES_REQUESTED: ("changes_request", "user"),
        ForgeEventKind.MERGE: ("pullrequest", "closed_by"),
    }[kind]
    login = text(doc, *who, "account_id", limit=128) or text(doc, "actor", "account_id", limit=128)
    head = required("bitbucket", delivery_id, pull, "source", "commit", "hash").lower()
    if not _ABBREVIATED.fullmatch(head):
        raise DeliveryInvalid(
            "bitbucket", delivery_id, "`pullrequest.source.commit.hash` is no hash"
        )
    return ForgeEvent(
        kind=kind,
        forge="bitbucket",
        repository=required("bitbucket", delivery_id, doc, "repository", "full_name"),
        request=required("bitbucket", delivery_id, pull, "id"),
        branch=branch,
        commit=head,
        login=login.strip(),
        merge_commit=text(pull, "merge_commit", "hash", limit=64),
        abbreviated=len(head) < 40,
    )


def _bitbucket_dc(delivery_id: str, kind: ForgeEventKind, doc: dict[str, Any]) -> ForgeEvent | str:
    pull = mapping(doc, "pullRequest")
    branch = text(pull, "fromRef", "displayId", limit=300)
    if not branch.startswith(BRANCH_PREFIX) and kind is not ForgeEventKind.MERGE:
        return _not_ours(branch)
    if kind is ForgeEventKind.MERGE:
        login = text(doc, "actor", "name", limit=128)
    else:
        login = required("bitbucket", delivery_id, doc, "participant", "user", "name")
    project = required("bitbucket", delivery_id, pull, "toRef", "repository", "project", "key")
    slug = required("bitbucket", delivery_id, pull, "toRef", "repository", "slug")
    return ForgeEvent(
        kind=kind,
        forge="bitbucket",
        repository=f"{project}/{slug}",
        request=required("bitbucket", delivery_id, pull, "id"),
        branch=branch,
        commit=_commit("bitbucket", delivery_id, pull, "fromRef", "latestCommit"),
        login=login.strip(),
        merge_commit=text(pull, "properties", "mergeCommit", "id", limit=64),
    )
