"""The review port: a forge holds the change on a branch where humans review it.

Repositories are named by canonical id (`acme/payments`, `local:/srv/payments`), never by
folder name: two repositories never share a forge repository."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from codefactory.domain import Change


class Forge(Protocol):
    """Where a run's change becomes a reviewable branch: a local bare repo, GitHub, GitLab."""

    def open_change(
        self,
        *,
        repo: Path,
        repository: str,
        base_commit: str,
        branch: str,
        change: Change,
        message: str,
        author_name: str,
        author_email: str,
    ) -> str:
        """Commit `change` on top of `base_commit` (read from the checkout `repo`) as
        `branch` of the forge repository of `repository`, a canonical id
        (docs/repositories.md); returns the new commit id."""
        ...

    def diff(self, *, repository: str, base_commit: str, head_commit: str) -> str:
        """The change as a unified patch (`git diff --binary`) a reviewer can apply."""
        ...

    def branch_head(self, repository: str, branch: str) -> str | None:
        """The commit `branch` points at; None when the branch or repository is absent."""
        ...

    def repository_path(self, repository: str) -> Path:
        """Where the forge keeps the repository with canonical id `repository`; the package
        tells reviewers to look there."""
        ...


@dataclass(frozen=True)
class RequestDraft:
    """What a draft pull/merge request carries (the package's own words)."""

    repository: str
    """The forge's name of the repository: `owner/name`, `group/sub/project`,
    `project/repo` (Azure DevOps), `workspace/repo` or `PROJECT/repo` (Bitbucket)."""
    branch: str
    """The source branch, `factory/<run-id>`."""
    base_branch: str
    commit: str
    """The packaged, signed head commit (40 or 64 hex)."""
    title: str
    body: str
    """Markdown: summary, risk, rollback plan, evidence links, provenance."""


@dataclass(frozen=True)
class OpenedRequest:
    """A request the forge opened: its number (GitHub/Bitbucket/Azure DevOps id, GitLab
    `iid`) and the address a human opens."""

    number: str
    url: str
    author: str = ""
    """The forge login the request was opened under, as the forge reports it."""
    author_id: str = ""
    """The author's unique, stable account id where `author` is not one (Bitbucket
    Cloud's `account_id`; nicknames repeat); "" elsewhere. `ForgeHost.user_login` names
    an account the same way: compare it with `author_id or author`."""


@dataclass(frozen=True)
class CommitVerdict:
    """The gate's verdict as a commit status / check: `state` is `success`, `failure` or
    `pending`; `description` at most 140 characters."""

    state: str
    description: str
    target_url: str = ""


@dataclass(frozen=True)
class BranchProtection:
    """What the forge enforces on a branch before a change merges into it."""

    branch: str
    protected: bool
    required_approvals: int
    """Approving reviews required (0: none)."""
    dismisses_stale_approvals: bool
    """A new push drops earlier approvals."""
    admins_bypass: bool
    """Administrators (or a bypass list) may merge without the rules."""
    required_checks: tuple[str, ...]
    """Status checks that must pass (names)."""

    def gaps(self, *, status_context: str) -> list[str]:
        """What would let the agent's change merge without review, in words; empty: none."""
        found: list[str] = []
        if not self.protected:
            return [f"branch {self.branch} is not protected: anyone with write access merges"]
        if self.required_approvals < 1:
            found.append("no approving review is required")
        if not self.dismisses_stale_approvals:
            found.append("an approval survives a later push (stale approvals are not dismissed)")
        if self.admins_bypass:
            found.append("administrators may merge without the rules")
        if status_context not in self.required_checks:
            found.append(f"the gate's verdict ({status_context}) is not a required check")
        return found


@dataclass(frozen=True, kw_only=True)
class ConfirmedApproval:
    """What the forge itself says, asked with the factory's app token, about one approval a
    webhook claimed (`ForgeHost.confirm_approval`): a webhook body alone proves nothing,
    since anyone holding the shared webhook secret can write one."""

    approved: bool
    """The forge holds an approval by the reviewer on the request, now."""
    commit: str
    """The full commit id the approval is for (GitHub's review `commit_id`); the request's
    current head where the forge does not tie approvals to a commit (GitLab, Azure DevOps,
    Bitbucket: each drops or keeps approvals on a push by its own settings)."""
    head_repository: str
    """The repository the request's source branch lives in, as the forge names it (a fork
    names another one); Azure DevOps, whose ids are GUIDs, gives `project/repo`."""
    base_repository: str
    """The repository the request merges into, named the same way."""
    base_branch: str
    """The branch the request merges into, without `refs/heads/`."""
    author_login: str
    """Who opened the request, named as the forge's webhooks name reviewers (GitHub
    `login`, GitLab `username`, Azure DevOps `uniqueName`, Bitbucket Cloud `account_id`,
    Data Center `name`) and as `ForgeHost.user_login` names a token's account."""
    commit_bound: bool = False
    """The forge ties the approval to `commit` itself (GitHub's review `commit_id`). False
    (GitLab, Azure DevOps, Bitbucket): `commit` is only the request's head now, and the
    approval may have been given on an earlier head; it then counts only where the forge
    drops approvals on a push (`BranchProtection.dismisses_stale_approvals`)."""


class ForgeHost(Protocol):
    """A forge's REST API as review needs it (review/forges/: GitHub, GitLab, Azure DevOps,
    Bitbucket). Every method raises a `review.forges.errors.ForgeApiError` subclass naming
    the vendor's answer; none retries what the vendor does not say is safe to retry."""

    kind: str
    """`github`, `gitlab`, `azure-devops` or `bitbucket`."""

    def remote_url(self, repository: str) -> str:
        """The git remote (HTTPS) of the forge repository named `repository`."""
        ...

    def push_header(self) -> str:
        """The `Authorization` header value git sends when the factory pushes (its app or
        bot token, never a person's)."""
        ...

    def open_request(self, draft: RequestDraft, *, user_token: str) -> OpenedRequest:
        """Open `draft` as a draft request under the person whose token is `user_token`;
        a request already open for the same branch is returned, not duplicated."""
        ...

    def set_status(self, repository: str, commit: str, verdict: CommitVerdict) -> None:
        """Record the gate's verdict on `commit` (commit status or check run)."""
        ...

    def upload_sarif(self, repository: str, *, commit: str, ref: str, sarif: bytes) -> str | None:
        """Send a SARIF 2.1.0 log to the forge's code scanning; returns its id, or None when
        this forge has no code scanning (nothing is sent)."""
        ...

    def protection(self, repository: str, branch: str) -> BranchProtection:
        """What the forge enforces on `branch` of `repository`."""
        ...

    def confirm_approval(
        self, repository: str, *, request: str, reviewer_login: str, review_id: str
    ) -> ConfirmedApproval:
        """Ask the forge, with the factory's app token, whether `reviewer_login` approves
        request `request` of `repository` (`review_id`: the forge's id of the review, where
        it has one; GitHub only). `ForgeNotFound` when the request or review is absent."""
        ...

    def user_login(self, user_token: str) -> str:
        """The forge account `user_token` belongs to, named as `OpenedRequest.author_id
        or OpenedRequest.author` and `ConfirmedApproval.author_login` name it (GitHub
        `login`, GitLab `username`, Azure DevOps `uniqueName`, Bitbucket Cloud `account_id`,
        Data Center `name`); raises `ForgeUnauthorized` for a token it does not know."""
        ...
