"""GitLab (gitlab.com and self-managed) as a `ForgeHost`: REST API v4.

The REST base is `<base_url>/api/v4` unless `forge.api_url` says otherwise; a project is
named by its URL-encoded path (`group%2Fsub%2Fproject`). Tokens go as `Authorization:
Bearer` (OAuth tokens, and personal, project or group access tokens alike).

What is called, with which token:

- the draft request: `GET /projects/:id/merge_requests?source_branch=…&state=opened`, then
  `POST /projects/:id/merge_requests` (title prefixed `Draft: `), the SPONSOR's token;
- the gate's verdict: `POST /projects/:id/statuses/:sha` (`state`, `name`), the app's token;
- SARIF: none; GitLab's REST API takes no SARIF (`upload_sarif` returns None);
- branch protection: `GET /projects/:id/protected_branches/:name`, `/approvals`,
  `/approval_rules` and the project itself, the app's token;
- an approval a webhook claimed: `GET /projects/:id/merge_requests/:iid` and
  `GET /projects/:id/merge_requests/:iid/approvals`, the app's token;
- whose a user token is: `GET /user`, that token;
- git push: `<git_url>/<path>.git`, HTTP Basic `oauth2:<app token>`.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

import httpx

from codefactory.review.forges.errors import (
    ForgeConflict,
    ForgeInvalid,
    ForgeNotFound,
    ForgeUnavailable,
)
from codefactory.review.forges.http import ForgeHttp
from codefactory.review.forges.settings import ForgeSettings
from codefactory.review.port import (
    BranchProtection,
    CommitVerdict,
    ConfirmedApproval,
    OpenedRequest,
    RequestDraft,
)

CLOUD = "https://gitlab.com"
DRAFT_PREFIX = "Draft: "
_STATES = {"success": "success", "failure": "failed", "pending": "pending", "error": "failed"}
_ADMIN = 60  # GitLab's access level of an instance administrator


def project_id(repository: str) -> str:
    """The URL-encoded project path GitLab accepts wherever it wants a project id."""
    if repository.count("/") < 1:
        raise ValueError(f"{repository!r}: a GitLab project is group/project")
    return quote(repository, safe="")


class GitLabHost:
    """GitLab's REST API for one factory: `app_token` (a project, group or bot access token)
    pushes, sets statuses and reads protection; each merge request is opened with the
    sponsor's own OAuth token."""

    kind = "gitlab"

    def __init__(
        self,
        settings: ForgeSettings,
        *,
        app_token: str,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.base_url = settings.base_url or CLOUD
        self._app_token = app_token
        self.http = ForgeHttp.of(
            settings,
            base_url=settings.api_url or f"{self.base_url}/api/v4",
            headers={"Accept": "application/json", "User-Agent": "codefactory"},
            transport=transport,
        )

    def remote_url(self, repository: str) -> str:
        """`<git_url or base_url>/<group>/…/<project>.git`."""
        project_id(repository)
        path = "/".join(quote(part, safe="") for part in repository.split("/"))
        return f"{self.settings.git_url or self.base_url}/{path}.git"

    def push_header(self) -> str:
        """HTTP Basic `oauth2:<app token>` (GitLab ignores the user name of an access token
        and wants `oauth2` for an OAuth one)."""
        raw = f"oauth2:{self._app_token}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")

    def open_request(self, draft: RequestDraft, *, user_token: str) -> OpenedRequest:
        """The opened merge request of `draft.branch`, else a new one titled `Draft: …`
        (`201`), both under `user_token`. A `409` "Another open merge request already
        exists" (a race) is answered with the existing one. Raises `ForgeApiError`s."""
        project = project_id(draft.repository)
        auth = f"Bearer {user_token}"
        existing = self._open_for(project, draft.branch, auth)
        if existing is not None:
            return existing
        title = draft.title if draft.title.startswith(DRAFT_PREFIX) else DRAFT_PREFIX + draft.title
        body = {
            "source_branch": draft.branch,
            "target_branch": draft.base_branch,
            "title": title[:255],
            "description": draft.body,
            "remove_source_branch": False,
            "squash": False,
        }
        try:
            created = self.http.request(
                "POST", f"projects/{project}/merge_requests", call="open merge request",
                auth=auth, json_body=body,
            )  # fmt: skip
        except ForgeConflict:
            existing = self._open_for(project, draft.branch, auth)
            if existing is None:
                raise
            return existing
        return _opened(created, "open merge request")

    def _open_for(self, project: str, branch: str, auth: str) -> OpenedRequest | None:
        found = self.http.request(
            "GET",
            f"projects/{project}/merge_requests",
            call="find merge request",
            auth=auth,
            params={"source_branch": branch, "state": "opened", "per_page": "1"},
        )
        if not isinstance(found, list):
            raise ForgeUnavailable("gitlab", "find merge request", 200, "the answer is no list")
        return _opened(found[0], "find merge request") if found else None

    def set_status(self, repository: str, commit: str, verdict: CommitVerdict) -> None:
        """`POST /projects/:id/statuses/:sha` (`state` success/failed/pending, `name` =
        `forge.status_context`, `description`, `target_url`) with the app token. The same
        state set again (GitLab's `400` "Cannot transition status") is already done."""
        project = project_id(repository)
        body: dict[str, Any] = {
            "state": _STATES.get(verdict.state, "failed"),
            "name": self.settings.status_context,
            "description": verdict.description[:255],
        }
        if verdict.target_url:
            body["target_url"] = verdict.target_url
        try:
            self.http.request(
                "POST", f"projects/{project}/statuses/{commit}", call="set commit status",
                auth=f"Bearer {self._app_token}", json_body=body,
            )  # fmt: skip
        except ForgeInvalid as err:
            if "cannot transition status" not in err.vendor_message.lower():
                raise

    def upload_sarif(self, repository: str, *, commit: str, ref: str, sarif: bytes) -> str | None:
        """None: GitLab's REST API has no SARIF upload (its security reports come from CI
        job artifacts); nothing is sent."""
        return None

    def protection(self, repository: str, branch: str) -> BranchProtection:
        """From `GET /projects/:id/protected_branches/:name` (`404`: unprotected),
        `/approvals` (`approvals_before_merge`, `reset_approvals_on_push`), `/approval_rules`
        (the rules covering the branch: the largest `approvals_required`) and the project
        (`only_allow_merge_if_pipeline_succeeds`: the gate's status, an external job of the
        pipeline, then blocks a merge). A force push allowed on the branch, or a merge
        level for administrators, is a bypass."""
        project = project_id(repository)
        auth = f"Bearer {self._app_token}"
        try:
            rule = self.http.request(
                "GET", f"projects/{project}/protected_branches/{quote(branch, safe='')}",
                call="read protected branch", auth=auth,
            )  # fmt: skip
        except ForgeNotFound as err:
            if "project" in err.vendor_message.lower():
                raise
            return BranchProtection(branch, False, 0, False, True, ())
        rule = rule if isinstance(rule, dict) else {}
        approvals = self.http.request(
            "GET", f"projects/{project}/approvals", call="read approvals", auth=auth
        )
        approvals = approvals if isinstance(approvals, dict) else {}
        rules = self.http.request(
            "GET", f"projects/{project}/approval_rules", call="read approval rules", auth=auth
        )
        required = int(approvals.get("approvals_before_merge") or 0)
        for each in rules if isinstance(rules, list) else ():
            covered = [b.get("name") for b in each.get("protected_branches") or ()]
            if not covered or branch in covered:
                required = max(required, int(each.get("approvals_required") or 0))
        details = self.http.request("GET", f"projects/{project}", call="read project", auth=auth)
        gated = isinstance(details, dict) and details.get("only_allow_merge_if_pipeline_succeeds")
        levels = rule.get("merge_access_levels") or ()
        admins = any(level.get("access_level") == _ADMIN for level in levels)
        return BranchProtection(
            branch=branch,
            protected=True,
            required_approvals=required,
            dismisses_stale_approvals=bool(approvals.get("reset_approvals_on_push")),
            admins_bypass=admins or bool(rule.get("allow_force_push")),
            required_checks=(self.settings.status_context,) if gated else (),
        )

    def confirm_approval(
        self, repository: str, *, request: str, reviewer_login: str, review_id: str
    ) -> ConfirmedApproval:
        """The merge request (docs.gitlab.com/api/merge_requests/#get-single-mr:
        `source_project_id`, `target_project_id`, `target_branch`, `author.username`,
        `sha`) and its approvals (docs.gitlab.com/api/merge_request_approvals/
        #get-configuration-for-a-single-merge-request: `approved_by[].user.username`), read
        with the app token. GitLab ties no approval to a commit: `commit` is the request's
        head (`sha`); approvals a push reset (`reset_approvals_on_push`) are gone from
        `approved_by`. A source project other than the target is a fork, named by its
        `path_with_namespace` (`GET /projects/:id`), or `project <id>` when the app may not
        see it. `review_id` is unused (GitLab approvals have no id)."""
        project = project_id(repository)
        if not (request.isascii() and request.isdigit()):
            raise ForgeInvalid("gitlab", "confirm approval", 0, f"{request!r} is no iid")
        auth = f"Bearer {self._app_token}"
        path = f"projects/{project}/merge_requests/{request}"
        merge = _object(self.http.request("GET", path, call="read merge request", auth=auth))
        approvals = _object(
            self.http.request("GET", f"{path}/approvals", call="read approvals", auth=auth)
        )
        approvers = {
            str((each.get("user") or {}).get("username", "")).casefold()
            for each in approvals.get("approved_by") or ()
            if isinstance(each, dict)
        }
        target = merge.get("target_project_id")
        return ConfirmedApproval(
            approved=reviewer_login.casefold() in approvers,
            commit=str(merge.get("sha") or ""),
            head_repository=self._project_name(repository, target, merge.get("source_project_id")),
            base_repository=self._project_name(repository, merge.get("project_id"), target),
            base_branch=str(merge.get("target_branch", "")),
            author_login=str((merge.get("author") or {}).get("username", "")),
            commit_bound=False,  # no commit per approval: the head now
        )

    def _project_name(self, repository: str, known: Any, other: Any) -> str:
        """`repository` when project `other` is the same as `known` (the request's own
        project), else `other`'s `path_with_namespace`."""
        if other is not None and other == known:
            return repository
        if not isinstance(other, int):
            return ""
        try:
            found = self.http.request(
                "GET", f"projects/{other}", call="read project",
                auth=f"Bearer {self._app_token}",
            )  # fmt: skip
        except ForgeNotFound:
            return f"project {other}"
        return str(_object(found).get("path_with_namespace") or f"project {other}")

    def user_login(self, user_token: str) -> str:
        """`GET /user` with `user_token` (docs.gitlab.com/api/users/#get-the-current-user):
        its `username`."""
        answer = self.http.request("GET", "user", call="read user", auth=f"Bearer {user_token}")
        username = _object(answer).get("username")
        if not isinstance(username, str) or not username:
            raise ForgeUnavailable("gitlab", "read user", 200, "the answer has no username")
        return username

    def close(self) -> None:
        self.http.close()


def _object(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ForgeUnavailable("gitlab", "confirm approval", 200, "the answer is no object")
    return data


def _opened(data: Any, call: str) -> OpenedRequest:
    if not isinstance(data, dict) or "iid" not in data or not data.get("web_url"):
        raise ForgeUnavailable("gitlab", call, 200, "the merge request has no iid or web_url")
    author = data["author"] if isinstance(data.get("author"), dict) else {}
    return OpenedRequest(
        number=str(data["iid"]), url=str(data["web_url"]), author=str(author.get("username", ""))
    )
