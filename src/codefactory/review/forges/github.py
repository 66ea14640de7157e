"""GitHub (github.com and Enterprise Server) as a `ForgeHost`: REST API v3.

Every call sends `Accept: application/vnd.github+json` and `X-GitHub-Api-Version:
2022-11-28`. The REST base is `https://api.github.com` for github.com, `<base_url>/api/v3`
for Enterprise Server, unless `forge.api_url` says otherwise.

What is called, with which token:

- the draft request: `GET /repos/{o}/{r}/pulls?head={o}:{branch}&state=open`, then
  `POST /repos/{o}/{r}/pulls` (`draft: true`), with the SPONSOR's token;
- the gate's verdict: `POST /repos/{o}/{r}/statuses/{sha}`, the app's token;
- SARIF: `POST /repos/{o}/{r}/code-scanning/sarifs` (gzip + base64), the app's token;
- branch protection: `GET /repos/{o}/{r}/branches/{b}/protection`, the app's token;
- an approval a webhook claimed: `GET /repos/{o}/{r}/pulls/{n}` and
  `GET /repos/{o}/{r}/pulls/{n}/reviews/{review_id}`, the app's token;
- whose a user token is: `GET /user`, that token;
- git push: `<git_url>/{o}/{r}.git`, HTTP Basic `x-access-token:<app token>`.
"""

from __future__ import annotations

import base64
import gzip
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from codefactory.review.forges.errors import ForgeInvalid, ForgeNotFound, ForgeUnavailable
from codefactory.review.forges.http import ForgeHttp
from codefactory.review.forges.settings import ForgeSettings
from codefactory.review.port import (
    BranchProtection,
    CommitVerdict,
    ConfirmedApproval,
    OpenedRequest,
    RequestDraft,
)

API_VERSION = "2022-11-28"
CLOUD = "https://github.com"
CLOUD_API = "https://api.github.com"
_STATES = {"success": "success", "failure": "failure", "pending": "pending", "error": "error"}
_WITHDRAWING = frozenset({"CHANGES_REQUESTED", "DISMISSED"})
REVIEW_PAGES = 10
"""At most this many pages of 100 reviews are read when confirming an approval."""


def _split(repository: str) -> tuple[str, str]:
    owner, _, name = repository.partition("/")
    if not owner or not name or "/" in name:
        raise ValueError(f"{repository!r}: a GitHub repository is owner/name")
    return quote(owner, safe=""), quote(name, safe="")


class GitHubHost:
    """GitHub's REST API for one factory: `app_token` (a GitHub App installation token or a
    bot's fine-grained token) pushes, sets statuses, uploads SARIF and reads protection;
    each pull request is opened with the sponsor's own user token."""

    kind = "github"

    def __init__(
        self,
        settings: ForgeSettings,
        *,
        app_token: str,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.base_url = settings.base_url or CLOUD
        cloud = urlsplit(self.base_url).hostname == "github.com"
        api = settings.api_url or (CLOUD_API if cloud else f"{self.base_url}/api/v3")
        self._app_token = app_token
        self.http = ForgeHttp.of(
            settings,
            base_url=api,
            headers={
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": "codefactory",
            },
            transport=transport,
        )

    def remote_url(self, repository: str) -> str:
        """`<git_url or base_url>/{owner}/{name}.git`."""
        owner, name = _split(repository)
        return f"{self.settings.git_url or self.base_url}/{owner}/{name}.git"

    def push_header(self) -> str:
        """HTTP Basic `x-access-token:<app token>`, as GitHub documents for app tokens."""
        raw = f"x-access-token:{self._app_token}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")

    def open_request(self, draft: RequestDraft, *, user_token: str) -> OpenedRequest:
        """The open pull request of `draft.branch`, else a new draft one (`201`), both under
        `user_token` (`Authorization: Bearer`). A `422` "A pull request already exists" (a
        race) is answered with the existing one. Raises `ForgeApiError` subclasses."""
        owner, name = _split(draft.repository)
        auth = f"Bearer {user_token}"
        existing = self._open_for(owner, name, draft.branch, auth)
        if existing is not None:
            return existing
        body = {
            "title": draft.title,
            "head": draft.branch,
            "base": draft.base_branch,
            "body": draft.body,
            "draft": True,
            "maintainer_can_modify": False,
        }
        try:
            created = self.http.request(
                "POST", f"repos/{owner}/{name}/pulls", call="open pull request", auth=auth,
                json_body=body,
            )  # fmt: skip
        except ForgeInvalid as err:
            if "pull request already exists" not in err.vendor_message.lower():
                raise
            existing = self._open_for(owner, name, draft.branch, auth)
            if existing is None:
                raise
            return existing
        return _opened(created, "open pull request")

    def _open_for(self, owner: str, name: str, branch: str, auth: str) -> OpenedRequest | None:
        found = self.http.request(
            "GET",
            f"repos/{owner}/{name}/pulls",
            call="find pull request",
            auth=auth,
            params={"head": f"{owner}:{branch}", "state": "open", "per_page": "1"},
        )
        if not isinstance(found, list):
            raise ForgeUnavailable("github", "find pull request", 200, "the answer is no list")
        return _opened(found[0], "find pull request") if found else None

    def set_status(self, repository: str, commit: str, verdict: CommitVerdict) -> None:
        """`POST /repos/{o}/{r}/statuses/{sha}` (`state`, `description` ≤ 140, `context` =
        `forge.status_context`, `target_url` when given) with the app token; a repeated
        status is harmless, so a `502/503/504` is retried."""
        owner, name = _split(repository)
        body: dict[str, Any] = {
            "state": _STATES.get(verdict.state, "error"),
            "description": verdict.description[:140],
            "context": self.settings.status_context,
        }
        if verdict.target_url:
            body["target_url"] = verdict.target_url
        self.http.request(
            "POST", f"repos/{owner}/{name}/statuses/{commit}", call="set commit status",
            auth=f"Bearer {self._app_token}", json_body=body, idempotent=True,
        )  # fmt: skip

    def upload_sarif(self, repository: str, *, commit: str, ref: str, sarif: bytes) -> str | None:
        """`POST /repos/{o}/{r}/code-scanning/sarifs` with the SARIF gzip-compressed and
        base64-encoded (`sarif`), `commit_sha` and `ref` (`refs/heads/<branch>`); returns
        the upload's `id` (the `202` answer)."""
        owner, name = _split(repository)
        body = {
            "commit_sha": commit,
            "ref": ref,
            "sarif": base64.b64encode(gzip.compress(sarif, mtime=0)).decode("ascii"),
            "tool_name": "codefactory",
        }
        answer = self.http.request(
            "POST", f"repos/{owner}/{name}/code-scanning/sarifs", call="upload SARIF",
            auth=f"Bearer {self._app_token}", json_body=body,
        )  # fmt: skip
        if not isinstance(answer, dict) or not answer.get("id"):
            raise ForgeUnavailable("github", "upload SARIF", 202, "the answer has no id")
        return str(answer["id"])

    def protection(self, repository: str, branch: str) -> BranchProtection:
        """`GET /repos/{o}/{r}/branches/{b}/protection` with the app token; `404` "Branch
        not protected" is an unprotected branch (another `404` is `ForgeNotFound`)."""
        owner, name = _split(repository)
        try:
            rules = self.http.request(
                "GET", f"repos/{owner}/{name}/branches/{quote(branch, safe='')}/protection",
                call="read branch protection", auth=f"Bearer {self._app_token}",
            )  # fmt: skip
        except ForgeNotFound as err:
            if "not protected" not in err.vendor_message.lower():
                raise
            return BranchProtection(branch, False, 0, False, True, ())
        rules = rules if isinstance(rules, dict) else {}
        reviews = rules.get("required_pull_request_reviews") or {}
        checks = rules.get("required_status_checks") or {}
        contexts = set(checks.get("contexts") or ())
        contexts |= {
            c.get("context", "") for c in checks.get("checks") or () if isinstance(c, dict)
        }
        allowances = reviews.get("bypass_pull_request_allowances") or {}
        bypass = any(allowances.get(kind) for kind in ("users", "teams", "apps"))
        enforced = bool((rules.get("enforce_admins") or {}).get("enabled"))
        return BranchProtection(
            branch=branch,
            protected=True,
            required_approvals=int(reviews.get("required_approving_review_count") or 0),
            dismisses_stale_approvals=bool(reviews.get("dismiss_stale_reviews")),
            admins_bypass=not enforced or bypass,
            required_checks=tuple(sorted(c for c in contexts if c)),
        )

    def confirm_approval(
        self, repository: str, *, request: str, reviewer_login: str, review_id: str
    ) -> ConfirmedApproval:
        """The pull request (docs.github.com/rest/pulls/pulls#get-a-pull-request:
        `head.repo.full_name`, `base.repo.full_name`, `base.ref`, `user.login`) and the
        review (docs.github.com/rest/pulls/reviews#get-a-review-for-a-pull-request:
        `user.login`, `state`, `commit_id`), read with the app token. Approved when the
        review's state is `APPROVED` (a dismissed one reads `DISMISSED`), its author is
        `reviewer_login` and they have not asked for changes since (`_still_approves`);
        `commit` is the review's `commit_id`. A `head.repo` of null (a
        deleted fork) is an empty `head_repository`."""
        owner, name = _split(repository)
        number, review = _digits(request, "request"), _digits(review_id, "review id")
        auth = f"Bearer {self._app_token}"
        pull = self.http.request(
            "GET", f"repos/{owner}/{name}/pulls/{number}", call="read pull request", auth=auth
        )
        found = self.http.request(
            "GET", f"repos/{owner}/{name}/pulls/{number}/reviews/{review}",
            call="read review", auth=auth,
        )  # fmt: skip
        pull, found = _object(pull, "read pull request"), _object(found, "read review")
        head, base = _object(pull.get("head"), "read pull request"), pull.get("base") or {}
        reviewer = str((found.get("user") or {}).get("login", ""))
        approved = (
            found.get("state") == "APPROVED"
            and reviewer.casefold() == reviewer_login.casefold()
            and self._still_approves(owner, name, number, reviewer, int(review), auth)
        )
        return ConfirmedApproval(
            approved=approved,
            commit=str(found.get("commit_id") or ""),
            head_repository=str((head.get("repo") or {}).get("full_name", "")),
            base_repository=str((base.get("repo") or {}).get("full_name", "")),
            base_branch=str(base.get("ref", "")),
            author_login=str((pull.get("user") or {}).get("login", "")),
            commit_bound=True,
        )

    def _still_approves(
        self, owner: str, name: str, number: str, login: str, review: int, auth: str
    ) -> bool:
        """Whether `login` has not since asked for changes or been dismissed: no review of
        theirs after `review` (in the order GitHub lists them,
        docs.github.com/rest/pulls/reviews#list-reviews-for-a-pull-request) is
        `CHANGES_REQUESTED` or `DISMISSED`. A later approval does not bring `review` back:
        it is of its own commit and counts through its own event. At most `REVIEW_PAGES`
        pages of 100 are read; more is refused."""
        withdrawn = False
        for page in range(1, REVIEW_PAGES + 1):
            listed = self.http.request(
                "GET", f"repos/{owner}/{name}/pulls/{number}/reviews", call="list reviews",
                auth=auth, params={"per_page": "100", "page": str(page)},
            )  # fmt: skip
            if not isinstance(listed, list):
                raise ForgeUnavailable("github", "list reviews", 200, "the answer is no list")
            for each in listed:
                mine = (
                    isinstance(each, dict)
                    and str((each.get("user") or {}).get("login", "")).casefold()
                    == login.casefold()
                )
                later = int(each.get("id") or 0) > review if isinstance(each, dict) else False
                if mine and later and each.get("state") in _WITHDRAWING:
                    withdrawn = True
            if len(listed) < 100:
                return not withdrawn
        raise ForgeUnavailable("github", "list reviews", 200, "more reviews than the cap")

    def user_login(self, user_token: str) -> str:
        """`GET /user` with `user_token` (docs.github.com/rest/users/users#get-the-
        authenticated-user): its `login`. An installation token is refused there (`403`)."""
        answer = self.http.request("GET", "user", call="read user", auth=f"Bearer {user_token}")
        login = _object(answer, "read user").get("login")
        if not isinstance(login, str) or not login:
            raise ForgeUnavailable("github", "read user", 200, "the answer has no login")
        return login

    def close(self) -> None:
        self.http.close()


def _digits(value: str, what: str) -> str:
    if not (value.isascii() and value.isdigit()):
        raise ForgeInvalid("github", "confirm approval", 0, f"{what} {value!r} is no number")
    return value


def _object(data: Any, call: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ForgeUnavailable("github", call, 200, "the answer is no object")
    return data


def _opened(data: Any, call: str) -> OpenedRequest:
    if not isinstance(data, dict) or "number" not in data or not data.get("html_url"):
        raise ForgeUnavailable("github", call, 200, "the pull request has no number or html_url")
    user = data["user"] if isinstance(data.get("user"), dict) else {}
    return OpenedRequest(
        number=str(data["number"]), url=str(data["html_url"]), author=str(user.get("login", ""))
    )
