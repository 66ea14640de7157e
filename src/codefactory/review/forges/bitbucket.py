"""Bitbucket Cloud and Bitbucket Data Center behind `ForgeHost` (`forge.bitbucket_flavour`).

Cloud (REST 2.0, developer.atlassian.com/cloud/bitbucket/rest; repository `workspace/repo`):

- pullrequests: `GET|POST /repositories/{workspace}/{repo}/pullrequests`
- commit statuses: `POST /repositories/{workspace}/{repo}/commit/{sha}/statuses/build`
- branch restrictions: `GET /repositories/{workspace}/{repo}/branch-restrictions`, and
  `GET /repositories/{workspace}/{repo}/branching-model` when a restriction names a branch type
- an approval: `GET /repositories/{workspace}/{repo}/pullrequests/{id}`, then
  `GET /repositories/{workspace}/{repo}/commit/{hash}` (the request names a 12-digit hash)
- whose a token is: `GET /user` (`account_id`)

Data Center (developer.atlassian.com/server/bitbucket/rest; repository `PROJECT/repo`):

- `GET|POST <base>/rest/api/1.0/projects/{key}/repos/{slug}/pull-requests`
- `POST <base>/rest/build-status/1.0/commits/{sha}` (outside `/rest/api/1.0`)
- `GET <base>/rest/branch-permissions/2.0/projects/{key}/repos/{slug}/restrictions`
- `GET <base>/rest/api/1.0/projects/{key}/repos/{slug}/settings/pull-requests` (merge checks)
- `GET <base>/rest/default-reviewers/1.0/projects/{key}/repos/{slug}/conditions`
- an approval: `GET <base>/rest/api/1.0/projects/{key}/repos/{slug}/pull-requests/{id}`
- whose a token is: the `X-AUSERNAME` header of `GET <base>/rest/api/1.0/application-properties`

Every call sends `Authorization: Bearer <token>` (Cloud OAuth and access tokens, Data Center
HTTP access tokens). Git pushes: Cloud `Basic base64("x-token-auth:" + token)` (the
documented user name of access tokens over HTTPS), Data Center `Bearer`.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx

from codefactory.review.forges.bitbucket_protection import (
    cloud_matches,
    cloud_protection,
    dc_protection,
)
from codefactory.review.forges.errors import (
    ForgeConflict,
    ForgeInvalid,
    ForgeNotFound,
    ForgeUnauthorized,
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

CLOUD_API = "https://api.bitbucket.org/2.0"
CLOUD_WEB = "https://bitbucket.org"
DC_API_PATH = "/rest/api/1.0"
TITLE_MAX = 255
"""Both flavours keep a request title to 255 characters."""
PAGE_CAP = 20
"""At most this many pages of a list are read (100 items each): a longer list is refused."""

_STATES = {"success": "SUCCESSFUL", "failure": "FAILED", "pending": "INPROGRESS"}
_FORGE = "bitbucket"


class BitbucketHost:
    """`ForgeHost` for Bitbucket: pull requests, build statuses, branch protection."""

    kind = "bitbucket"

    def __init__(
        self,
        settings: ForgeSettings,
        *,
        app_token: str,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._settings = settings
        self._app_token = app_token
        self._cloud = settings.bitbucket_flavour == "cloud"
        if self._cloud:
            self._web = (settings.base_url or CLOUD_WEB).rstrip("/")
            api = settings.api_url or CLOUD_API
            root = api
        else:
            if not settings.base_url and not settings.api_url:
                raise ValueError("forge.base_url: the Bitbucket Data Center address")
            api = settings.api_url or settings.base_url + DC_API_PATH
            root = settings.base_url or api.removesuffix(DC_API_PATH)
            self._web = root.rstrip("/")
        self._api = self._client(api, transport)
        self._root = self._client(root, transport)
        """Data Center's build-status, branch-permissions and default-reviewers APIs live
        beside `/rest/api/1.0`, under the server's root."""

    def _client(self, base: str, transport: httpx.BaseTransport | None) -> ForgeHttp:
        settings = self._settings
        return ForgeHttp.of(
            settings,
            base_url=base,
            headers={"Accept": "application/json"},
            transport=transport,
        )

    def remote_url(self, repository: str) -> str:
        """Cloud `https://bitbucket.org/{workspace}/{repo}.git`, Data Center
        `<base>/scm/{project}/{repo}.git` (`forge.git_url` replaces the base)."""
        owner, repo = _split(repository)
        base = (self._settings.git_url or self._web).rstrip("/")
        middle = "" if self._cloud else "/scm"
        return f"{base}{middle}/{quote(owner)}/{quote(repo)}.git"

    def push_header(self) -> str:
        """The app token for git over HTTPS."""
        if self._cloud:
            pair = f"x-token-auth:{self._app_token}".encode()
            return "Basic " + base64.b64encode(pair).decode("ascii")
        return f"Bearer {self._app_token}"

    def open_request(self, draft: RequestDraft, *, user_token: str) -> OpenedRequest:
        """The open request from `draft.branch` if there is one, else a new draft request,
        both under `user_token`. A `409` (Data Center's `DuplicatePullRequestException`)
        re-reads the open one."""
        auth = f"Bearer {user_token}"
        existing = self._open_for(draft, auth)
        if existing is not None:
            return existing
        owner, repo = _split(draft.repository)
        if self._cloud:
            path = f"repositories/{_q(owner)}/{_q(repo)}/pullrequests"
            body = _cloud_request(draft)
        else:
            path, body = f"{_dc_repo(owner, repo)}/pull-requests", _dc_request(draft, owner, repo)
        try:
            created = self._api.request(
                "POST", path, call="open request", auth=auth, json_body=body
            )
        except ForgeConflict:
            existing = self._open_for(draft, auth)
            if existing is None:
                raise
            return existing
        return self._opened(created)

    def set_status(self, repository: str, commit: str, verdict: CommitVerdict) -> None:
        """A build status under the app token, keyed by `forge.status_context`: `state`
        `SUCCESSFUL`, `FAILED` or `INPROGRESS`; `url` (required by both flavours) is the
        verdict's link, else the commit's page."""
        owner, repo = _split(repository)
        key = self._settings.status_context
        body = {
            "key": key,
            "state": _state(verdict),
            "name": key,
            "url": verdict.target_url or self._commit_page(owner, repo, commit),
            "description": verdict.description[:140],
        }
        auth = f"Bearer {self._app_token}"
        if self._cloud:
            path = f"repositories/{_q(owner)}/{_q(repo)}/commit/{_q(commit)}/statuses/build"
            self._api.request("POST", path, call="set status", auth=auth, json_body=body)
        else:
            path = f"rest/build-status/1.0/commits/{_q(commit)}"
            self._root.request("POST", path, call="set status", auth=auth, json_body=body)

    def upload_sarif(self, repository: str, *, commit: str, ref: str, sarif: bytes) -> str | None:
        """None: Bitbucket has no SARIF upload. Its Code Insights reports and annotations
        are a format of their own (not SARIF 2.1.0); nothing is sent."""
        return None

    def protection(self, repository: str, branch: str) -> BranchProtection:
        """What Bitbucket enforces on `branch`, read under the app token and mapped by
        `bitbucket_protection` (Cloud: branch restrictions, every page, and the branching
        model when a restriction names a branch type; Data Center: ref restrictions, pull
        request settings, default reviewer and required builds conditions). On Data Center
        a `404` from the last three reads as nothing configured there (an older release or
        a merge check not installed); every other failure raises."""
        owner, repo = _split(repository)
        auth = f"Bearer {self._app_token}"
        if self._cloud:
            return self._cloud_protection(owner, repo, branch, auth)
        return self._dc_protection(owner, repo, branch, auth)

    def confirm_approval(
        self, repository: str, *, request: str, reviewer_login: str, review_id: str
    ) -> ConfirmedApproval:
        """Read the request with the app token and say whether `reviewer_login` approves it.

        Cloud (developer.atlassian.com/cloud/bitbucket/rest/api-group-pullrequests/
        #api-repositories-workspace-repo-slug-pullrequests-pull-request-id-get): a
        participant whose `user.account_id` (or `uuid`) is `reviewer_login` with `approved`
        true; `source`/`destination` `.repository.full_name`, `destination.branch.name`,
        `author.account_id`. The request names `source.commit.hash` in 12 digits: the full
        id is read from the source repository (`GET .../commit/{hash}`, api-group-commits);
        when that repository cannot be read, the short hash is kept (it matches no packaged
        commit).

        Data Center (developer.atlassian.com/server/bitbucket/rest, Pull Requests - Get
        pull request): a reviewer or participant whose `user.name` is `reviewer_login` with
        `approved` true or `status` `APPROVED`; `fromRef`/`toRef` `.repository` as
        `PROJECT/slug`, `toRef.displayId`, `fromRef.latestCommit`, `author.user.name`.

        Neither flavour ties an approval to a commit (a setting withdraws approvals on a
        push): `commit` is the request's head. `review_id` is unused."""
        if not (request.isascii() and request.isdigit()):
            raise ForgeInvalid(_FORGE, "confirm approval", 0, f"{request!r} is no request id")
        owner, repo = _split(repository)
        auth = f"Bearer {self._app_token}"
        if self._cloud:
            path = f"repositories/{_q(owner)}/{_q(repo)}/pullrequests/{request}"
            pull = _object(self._api.request("GET", path, call="read request", auth=auth))
            return self._cloud_confirmed(pull, reviewer_login, auth)
        path = f"{_dc_repo(owner, repo)}/pull-requests/{request}"
        pull = _object(self._api.request("GET", path, call="read request", auth=auth))
        return _dc_confirmed(pull, reviewer_login)

    def _cloud_confirmed(
        self, pull: dict[str, Any], reviewer_login: str, auth: str
    ) -> ConfirmedApproval:
        source, destination = pull.get("source") or {}, pull.get("destination") or {}
        head = str((source.get("repository") or {}).get("full_name") or "")
        short = str((source.get("commit") or {}).get("hash") or "")
        approved = any(
            each.get("approved") is True
            and reviewer_login
            in ((each.get("user") or {}).get("account_id"), (each.get("user") or {}).get("uuid"))
            for each in pull.get("participants") or ()
            if isinstance(each, dict)
        )
        return ConfirmedApproval(
            approved=approved,
            commit=self._full_hash(head, short, auth) if head and short else short,
            head_repository=head,
            base_repository=str((destination.get("repository") or {}).get("full_name") or ""),
            base_branch=str((destination.get("branch") or {}).get("name") or ""),
            author_login=str((pull.get("author") or {}).get("account_id") or ""),
            commit_bound=False,  # no commit per approval: the head now
        )

    def _full_hash(self, repository: str, short: str, auth: str) -> str:
        owner, _, repo = repository.partition("/")
        if not all(c in "0123456789abcdef" for c in short.lower()):
            return short
        try:
            answer = self._api.request(
                "GET", f"repositories/{_q(owner)}/{_q(repo)}/commit/{short}",
                call="read commit", auth=auth,
            )  # fmt: skip
        except ForgeNotFound:
            return short  # a fork the app may not read: the short hash matches nothing
        full = str(_object(answer).get("hash") or "")
        return full if full.lower().startswith(short.lower()) else short

    def user_login(self, user_token: str) -> str:
        """Whose `user_token` is. Cloud: `account_id` of `GET /user`
        (developer.atlassian.com/cloud/bitbucket/rest/api-group-users/#api-user-get;
        nicknames are not unique, the account id is, and it is how the webhooks name
        reviewers). Data Center: the `X-AUSERNAME` header Bitbucket sets on every
        authenticated answer (here of `GET /rest/api/1.0/application-properties`), the
        `user.name` requests and webhooks name; absent: no user, `ForgeUnauthorized`."""
        auth = f"Bearer {user_token}"
        if self._cloud:
            answer = self._api.request("GET", "user", call="read user", auth=auth)
            account = _object(answer).get("account_id")
            if not isinstance(account, str) or not account:
                raise ForgeUnavailable(_FORGE, "read user", 200, "the answer has no account_id")
            return account
        _, headers = self._api.request_answer(
            "GET", "application-properties", call="read user", auth=auth
        )
        name = str(headers.get("x-ausername", "")).strip()
        if not name:
            raise ForgeUnauthorized(_FORGE, "read user", 0, "the token authenticates no user")
        return name

    def close(self) -> None:
        """Close the HTTP connections."""
        self._api.close()
        self._root.close()

    def _cloud_protection(self, owner: str, repo: str, branch: str, auth: str) -> BranchProtection:
        base = f"repositories/{_q(owner)}/{_q(repo)}"
        restrictions = list(self._cloud_pages(f"{base}/branch-restrictions", auth))
        model: dict[str, Any] = {}
        if any(r.get("branch_match_kind") == "branching_model" for r in restrictions):
            answer = self._api.request(
                "GET", f"{base}/branching-model", call="read branching model", auth=auth
            )
            model = answer if isinstance(answer, dict) else {}
        return cloud_protection(
            branch,
            [r for r in restrictions if cloud_matches(r, branch, model)],
            status_context=self._settings.status_context,
        )

    def _dc_protection(self, owner: str, repo: str, branch: str, auth: str) -> BranchProtection:
        tail = f"projects/{_q(owner)}/repos/{_q(repo)}"
        restrictions = list(
            self._dc_pages(self._root, f"rest/branch-permissions/2.0/{tail}/restrictions", auth)
        )
        settings = self._optional(
            self._api, f"{tail}/settings/pull-requests", "read pull request settings", auth
        )
        reviewers = self._optional(
            self._root, f"rest/default-reviewers/1.0/{tail}/conditions", "read reviewers", auth
        )
        try:
            builds = list(
                self._dc_pages(
                    self._root,
                    f"rest/required-builds/latest/{tail}/conditions",
                    auth,
                    "read required builds",
                )
            )
        except ForgeNotFound:
            builds = []  # before Data Center 7.14, or the merge check is not installed
        return dc_protection(
            branch,
            restrictions=restrictions,
            settings=settings if isinstance(settings, dict) else {},
            reviewer_conditions=[c for c in reviewers or [] if isinstance(c, dict)],
            build_conditions=builds,
            status_context=self._settings.status_context,
        )

    def _optional(self, http: ForgeHttp, path: str, call: str, auth: str) -> Any:
        """A read whose `404` means the feature is absent (an older release, a plug-in not
        installed), read as nothing configured; the repository itself was found already."""
        try:
            return http.request("GET", path, call=call, auth=auth)
        except ForgeNotFound:
            return None

    def _open_for(self, draft: RequestDraft, auth: str) -> OpenedRequest | None:
        owner, repo = _split(draft.repository)
        if self._cloud:
            query = f'source.branch.name="{_bbql(draft.branch)}" AND state="OPEN"'
            answer = self._api.request(
                "GET",
                f"repositories/{_q(owner)}/{_q(repo)}/pullrequests",
                call="find request",
                auth=auth,
                params={"q": query},
            )
        else:
            answer = self._api.request(
                "GET",
                f"{_dc_repo(owner, repo)}/pull-requests",
                call="find request",
                auth=auth,
                params={
                    "at": f"refs/heads/{draft.branch}",
                    "direction": "OUTGOING",
                    "state": "OPEN",
                },
            )
        values = _page_values(answer, "find request")
        return self._opened(values[0]) if values else None

    def _opened(self, pull: Any) -> OpenedRequest:
        if not isinstance(pull, dict) or not isinstance(pull.get("id"), int):
            raise ForgeUnavailable(_FORGE, "open request", 0, "answer without a request id")
        links = pull.get("links") or {}
        author_id = ""
        if self._cloud:
            url = (links.get("html") or {}).get("href", "")
            author_info = pull.get("author") or {}
            author = author_info.get("nickname") or author_info.get("display_name") or ""
            author_id = str(author_info.get("account_id") or "")
        else:
            own = links.get("self") or [{}]
            url = own[0].get("href", "") if isinstance(own[0], dict) else ""
            author = ((pull.get("author") or {}).get("user") or {}).get("name", "")
        return OpenedRequest(
            number=str(pull["id"]), url=str(url), author=str(author), author_id=author_id
        )

    def _commit_page(self, owner: str, repo: str, commit: str) -> str:
        if self._cloud:
            return f"{self._web}/{quote(owner)}/{quote(repo)}/commits/{commit}"
        return f"{self._web}/projects/{quote(owner)}/repos/{quote(repo)}/commits/{commit}"

    def _cloud_pages(self, path: str, auth: str) -> Iterator[dict[str, Any]]:
        """Every value of a Cloud paged list (`page`, `pagelen`, `next`)."""
        for page in range(1, PAGE_CAP + 1):
            answer = self._api.request(
                "GET",
                path,
                call="read branch restrictions",
                auth=auth,
                params={"pagelen": "100", "page": str(page)},
            )
            yield from _page_values(answer, "read branch restrictions")
            if not answer.get("next"):
                return
        raise ForgeUnavailable(_FORGE, "read branch restrictions", 0, "more than 20 pages")

    def _dc_pages(
        self, http: ForgeHttp, path: str, auth: str, call: str = "read branch permissions"
    ) -> Iterator[dict[str, Any]]:
        """Every value of a Data Center paged list (`start`, `limit`, `isLastPage`,
        `nextPageStart`)."""
        start = 0
        for _ in range(PAGE_CAP):
            answer = http.request(
                "GET",
                path,
                call=call,
                auth=auth,
                params={"limit": "100", "start": str(start)},
            )
            yield from _page_values(answer, call)
            if answer.get("isLastPage", True) or answer.get("nextPageStart") is None:
                return
            start = int(answer["nextPageStart"])
        raise ForgeUnavailable(_FORGE, call, 0, "more than 20 pages")


def _state(verdict: CommitVerdict) -> str:
    if verdict.state not in _STATES:
        raise ForgeInvalid(_FORGE, "set status", 0, f"{verdict.state!r} is no verdict state")
    return _STATES[verdict.state]


def _split(repository: str) -> tuple[str, str]:
    parts = repository.split("/")
    if len(parts) != 2 or not all(parts):
        raise ForgeInvalid(_FORGE, "repository", 0, f"{repository!r} is not owner/repo")
    return parts[0], parts[1]


def _q(segment: str) -> str:
    return quote(segment, safe="")


def _dc_repo(project: str, repo: str) -> str:
    return f"projects/{_q(project)}/repos/{_q(repo)}"


def _bbql(value: str) -> str:
    """A string inside a BBQL `"..."` literal (backslash and quote escaped)."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _cloud_request(draft: RequestDraft) -> dict[str, Any]:
    return {
        "title": draft.title[:TITLE_MAX],
        "description": draft.body,
        "source": {"branch": {"name": draft.branch}},
        "destination": {"branch": {"name": draft.base_branch}},
        "draft": True,
    }


def _dc_request(draft: RequestDraft, project: str, repo: str) -> dict[str, Any]:
    repository = {"slug": repo, "project": {"key": project}}
    return {
        "title": draft.title[:TITLE_MAX],
        "description": draft.body,
        "fromRef": {"id": f"refs/heads/{draft.branch}", "repository": repository},
        "toRef": {"id": f"refs/heads/{draft.base_branch}", "repository": repository},
        "draft": True,
    }


def _object(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ForgeUnavailable(_FORGE, "confirm approval", 0, "the answer is no object")
    return data


def _dc_name(repository: Any) -> str:
    """A Data Center repository as `PROJECT/slug`."""
    if not isinstance(repository, dict):
        return ""
    key = (repository.get("project") or {}).get("key") or ""
    slug = repository.get("slug") or ""
    return f"{key}/{slug}" if key and slug else ""


def _dc_confirmed(pull: dict[str, Any], reviewer_login: str) -> ConfirmedApproval:
    people = [*(pull.get("reviewers") or ()), *(pull.get("participants") or ())]
    approved = any(
        isinstance(each, dict)
        and (each.get("approved") is True or each.get("status") == "APPROVED")
        and ((each.get("user") or {}).get("name") or "").casefold() == reviewer_login.casefold()
        for each in people
    )
    source, target = pull.get("fromRef") or {}, pull.get("toRef") or {}
    branch = target.get("displayId") or str(target.get("id") or "").removeprefix("refs/heads/")
    return ConfirmedApproval(
        approved=approved,
        commit=str(source.get("latestCommit") or ""),
        head_repository=_dc_name(source.get("repository")),
        base_repository=_dc_name(target.get("repository")),
        base_branch=str(branch),
        author_login=str(((pull.get("author") or {}).get("user") or {}).get("name") or ""),
        commit_bound=False,  # no commit per approval: the head now
    )


def _page_values(answer: Any, call: str) -> list[dict[str, Any]]:
    values = answer.get("values") if isinstance(answer, dict) else None
    if not isinstance(values, list):
        raise ForgeUnavailable(_FORGE, call, 0, "paged answer without a values array")
    return [v for v in values if isinstance(v, dict)]
