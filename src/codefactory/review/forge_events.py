"""Review and merge events a forge sends back about the factory's own requests.

They arrive signed on the trigger endpoints (`POST /webhooks/github`, `/webhooks/gitlab`),
verified as every delivery is (`triggers/github.py`, `triggers/gitlab.py`), and never start a
run: intake hands them to reconciliation (`review/reconcile.py`).

| forge | event | read as |
| --- | --- | --- |
| GitHub | `pull_request_review`, action `submitted`, `review.state` `approved` | approval |
| GitHub | `pull_request_review` `submitted`, `review.state` `changes_requested` | changes asked |
| GitHub | `pull_request`, action `closed`, `pull_request.merged: true` | merge |
| GitLab | `Merge Request Hook`, `object_attributes.action` `approved` / `approval` | approval |
| GitLab | `Merge Request Hook`, `object_attributes.action` `merge` | merge |

Fields (GitHub *Webhook events and payloads*; GitLab *Webhook events*, "Merge request
events"): the approved commit is `review.commit_id` / `object_attributes.last_commit.id`, the
merged head `pull_request.head.sha` / `object_attributes.last_commit.id`, the person
`review.user.login`, `merged_by.login` / `user.username`, the request
`pull_request.number` / `object_attributes.iid`, the branch `pull_request.head.ref` /
`object_attributes.source_branch`, the repository `repository.full_name` /
`project.path_with_namespace`. Only a `factory/<run-id>` branch is the factory's; every
other review or merge is ignored with the reason, as unrelated deliveries are.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any

from codefactory.triggers.errors import DeliveryInvalid
from codefactory.triggers.payload import delivered_object, dig, json_object, required, text
from codefactory.triggers.port import Delivery

BRANCH_PREFIX = "factory/"
"""The branch every run's change is pushed to: `factory/<run-id>`."""
_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
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
    """`github` or `gitlab`: also the directory identity kind of `login`."""
    repository: str
    """The forge's name of the repository (`owner/name`, `group/sub/project`)."""
    request: str
    """The pull request number (GitHub) or merge request iid (GitLab)."""
    branch: str
    commit: str
    """Approval: the head commit the review was given on; merge: the merged head commit."""
    login: str
    """Who reviewed or merged, as the forge names them (`review.user.login`,
    `merged_by.login`, `user.username`)."""
    review_id: str = ""
    """GitHub's `review.id`; GitLab approvals carry none."""
    merge_commit: str = ""
    """Merge: the commit the merge made on the base branch (`merge_commit_sha`), when sent."""

    @property
    def run_id(self) -> str:
        """The run the branch names (`factory/<run-id>` → `<run-id>`)."""
        return self.branch.removeprefix(BRANCH_PREFIX)


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
    branch = text(doc, "pull_request", "head", "ref", limit=300)
    if not branch.startswith(BRANCH_PREFIX):
        return _not_ours(branch)
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
    if not branch.startswith(BRANCH_PREFIX):
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
