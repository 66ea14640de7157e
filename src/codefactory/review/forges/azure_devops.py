"""Azure DevOps Repos (Services and Server) behind `ForgeHost`, over its REST API 7.1.

The REST base is the organisation (`https://dev.azure.com/<organisation>`) or a Server
collection URL (`https://tfs.example.com/tfs/<collection>`); a repository is `project/repo`.
Every call carries `api-version=7.1`. Endpoints (learn.microsoft.com/rest/api/azure/devops):

- git, Pull Requests - Get Pull Requests / Create:
  `GET|POST {project}/_apis/git/repositories/{repo}/pullrequests`
- git, Statuses - Create: `POST {project}/_apis/git/repositories/{repo}/commits/{id}/statuses`
- git, Repositories - Get: `GET {project}/_apis/git/repositories/{repo}`
- policy, Configurations - List: `GET {project}/_apis/policy/configurations`
- security, Access Control Lists - Query: `GET _apis/accesscontrollists/{namespace}`
- git, Pull Requests - Get Pull Request By Id / Pull Request Reviewers - List:
  `GET {project}/_apis/git/repositories/{repo}/pullrequests/{id}` and `.../reviewers`
- whose a token is: `GET _apis/connectionData` (Location - Get Connection Data), see
  `AzureDevOpsHost.user_login`

Credentials: a personal access token goes as `Basic base64(":" + pat)`, a Microsoft Entra
(OAuth) access token, which is a JWT, as `Bearer` (learn.microsoft.com/azure/devops/
integrate/get-started/authentication/authentication-guidance).
"""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any
from urllib.parse import quote

import httpx

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

API_VERSION = "7.1"
TITLE_MAX = 400
"""The longest pull request title the service keeps."""
DESCRIPTION_MAX = 4000
"""Azure DevOps refuses a pull request description over 4,000 characters."""
TRUNCATED_NOTE = "\n\n… (truncated: the change package holds the full description)"

MINIMUM_REVIEWERS = "fa4e907d-c16b-4a4c-9dfa-4906e5d171dd"
BUILD = "0609b952-1397-4640-95ec-e00a01b2c241"
STATUS = "cbdc66da-9728-4af8-aada-9a5a32e4a226"
"""Policy type ids (`GET {project}/_apis/policy/types`), the same in every organisation."""

GIT_REPOSITORIES_NAMESPACE = "2e9eb7ed-3c0a-47d4-87c1-0ffdd275fd87"
BYPASS_BITS = 128 | 32768
"""`PolicyExempt` ("Bypass policies when pushing") and `PullRequestBypassPolicy` ("Bypass
policies when completing pull requests") of the Git repositories security namespace."""

_STATES = {"success": "succeeded", "failure": "failed", "pending": "pending"}
_FORGE = "azure-devops"
APPROVED = 10
"""A reviewer's vote of "Approved" (5 is "approved with suggestions", which the factory
does not count)."""
CONNECTION_DATA_VERSION = "7.1-preview.1"
"""`_apis/connectionData` is a preview resource; the azure-devops Python client asks it
with this version."""


def authorization(token: str) -> str:
    """The `Authorization` value for `token`: `Bearer` for a JWT (an Entra access token),
    else `Basic` over `":" + token` (a personal access token)."""
    if token.count(".") == 2 and token.startswith("eyJ"):
        return f"Bearer {token}"
    return "Basic " + base64.b64encode(f":{token}".encode()).decode("ascii")


def status_context(name: str) -> dict[str, str]:
    """`codefactory/gate` as Azure's `{"genre": "codefactory", "name": "gate"}` (a status
    policy names it back as `genre/name`)."""
    genre, _, short = name.rpartition("/")
    return {"genre": genre, "name": short} if genre else {"name": short}


class AzureDevOpsHost:
    """`ForgeHost` for Azure DevOps Repos: pull requests, commit statuses, branch policies."""

    kind = "azure-devops"

    def __init__(
        self,
        settings: ForgeSettings,
        *,
        app_token: str,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not settings.base_url and not settings.api_url:
            raise ValueError("forge.base_url: the Azure DevOps organisation or collection URL")
        self._settings = settings
        self._app_token = app_token
        self._web = (settings.base_url or settings.api_url).rstrip("/")
        self._http = ForgeHttp.of(
            settings,
            base_url=settings.api_url or settings.base_url,
            headers={"Accept": "application/json"},
            transport=transport,
        )

    def remote_url(self, repository: str) -> str:
        """`<git_url or base_url>/{project}/_git/{repo}`."""
        project, repo = _split(repository)
        base = (self._settings.git_url or self._web).rstrip("/")
        return f"{base}/{quote(project)}/_git/{quote(repo)}"

    def push_header(self) -> str:
        """The app token's `Authorization` value (git accepts the same header as the API)."""
        return authorization(self._app_token)

    def open_request(self, draft: RequestDraft, *, user_token: str) -> OpenedRequest:
        """The active pull request from `refs/heads/<branch>` if one exists, else a new
        draft one (`isDraft: true`), both under `user_token`. A `409` (TF401179: an active
        request for the same source and target exists) re-reads the existing one."""
        auth = authorization(user_token)
        existing = self._active_request(draft, auth)
        if existing is not None:
            return existing
        body = {
            "sourceRefName": f"refs/heads/{draft.branch}",
            "targetRefName": f"refs/heads/{draft.base_branch}",
            "title": draft.title[:TITLE_MAX],
            "description": _description(draft.body),
            "isDraft": True,
        }
        try:
            created = self._call(
                "POST", draft.repository, "pullrequests", "open request", auth, body
            )
        except ForgeConflict:
            existing = self._active_request(draft, auth)
            if existing is None:
                raise
            return existing
        return self._opened(draft.repository, created)

    def set_status(self, repository: str, commit: str, verdict: CommitVerdict) -> None:
        """`POST .../commits/{commit}/statuses` under the app token: `state` `succeeded`,
        `failed` or `pending`, `context` from `forge.status_context`."""
        body: dict[str, Any] = {
            "state": _state(verdict),
            "description": verdict.description[:140],
            "context": status_context(self._settings.status_context),
        }
        if verdict.target_url:
            body["targetUrl"] = verdict.target_url
        path = f"commits/{quote(commit, safe='')}/statuses"
        self._call("POST", repository, path, "set status", self.push_header(), body)

    def upload_sarif(self, repository: str, *, commit: str, ref: str, sarif: bytes) -> str | None:
        """None: the core REST API of Azure DevOps Repos has no SARIF upload (code scanning
        there is GitHub Advanced Security for Azure DevOps, fed by its own pipeline task);
        nothing is sent."""
        return None

    def protection(self, repository: str, branch: str) -> BranchProtection:
        """The enabled, blocking branch policies scoped to `repository` (or to every
        repository of the project) and `refs/heads/<branch>` (`Exact`, `Prefix`, or
        `DefaultBranch` when it is the repository's default):

        - "Minimum number of reviewers": `minimumApproverCount` approvals, less one when
          `creatorVoteCounts` lets the author's own vote count; stale approvals dismissed
          when `resetOnSourcePush` (`requireVoteOnLastIteration` keeps the votes);
        - "Status": `statusGenre/statusName` is a required check; "Build": its
          `displayName` (or `build <definition id>`).

        A branch with any such policy is protected (pushes must go through a pull request).
        `admins_bypass`: an identity is allowed "Bypass policies when completing pull
        requests" or "Bypass policies when pushing" on the branch, the repository, the
        project's repositories or every repository (`bypassers`)."""
        auth = self.push_header()
        info = self._call("GET", repository, "", "read repository", auth, None)
        project, _ = _split(repository)
        configurations = self._http.request(
            "GET",
            f"{quote(project, safe='')}/_apis/policy/configurations",
            call="read branch policies",
            auth=auth,
            params={"api-version": API_VERSION},
        )
        ref = f"refs/heads/{branch}"
        scoped = [
            policy
            for policy in _values(configurations, "read branch policies")
            if policy.get("isEnabled")
            and policy.get("isBlocking")
            and not policy.get("isDeleted")
            and _applies(policy, str(info.get("id", "")), ref, str(info.get("defaultBranch", "")))
        ]
        found = _protection(branch, scoped)
        project_id = str((info.get("project") or {}).get("id", ""))
        bypass = self.bypassers(project_id, str(info.get("id", "")), ref)
        return replace(found, admins_bypass=bool(bypass))

    def bypassers(self, project_id: str, repository_id: str, ref: str) -> list[str]:
        """The identity descriptors allowed to bypass branch policies on `ref`: the
        `PolicyExempt` (128) or `PullRequestBypassPolicy` (32768) bit of the Git
        repositories security namespace allowed on the ref's token or an ancestor
        (`repoV2`, `repoV2/{project}`, `repoV2/{project}/{repo}`, then the ref, each
        segment hex-encoded UTF-16LE) and not denied on a more specific one. Read with
        Access Control Lists - Query (`GET _apis/accesscontrollists/{namespace}`); a `404`
        (a server without that REST area) reads as no entries, any other failure raises."""
        repo_token = f"repoV2/{project_id}/{repository_id}"
        tokens = {"repoV2": False, f"repoV2/{project_id}": False, repo_token: True}
        lineage = _lineage(repo_token, ref)
        aces: dict[str, dict[str, Any]] = {}
        for token, recurse in tokens.items():
            try:
                answer = self._http.request(
                    "GET",
                    f"_apis/accesscontrollists/{GIT_REPOSITORIES_NAMESPACE}",
                    call="read bypass permissions",
                    auth=self.push_header(),
                    params={
                        "token": token,
                        "recurse": str(recurse).lower(),
                        "api-version": API_VERSION,
                    },
                )
            except ForgeNotFound:
                return []  # a server without the security REST area: nothing to read
            for acl in _values(answer, "read bypass permissions"):
                if acl.get("token") in lineage:
                    aces[str(acl["token"])] = acl.get("acesDictionary") or {}
        effective: dict[str, bool] = {}
        for token in lineage:  # from the widest scope to the ref: the nearest decides
            for descriptor, ace in aces.get(token, {}).items():
                if int(ace.get("deny") or 0) & BYPASS_BITS:
                    effective[descriptor] = False
                elif int(ace.get("allow") or 0) & BYPASS_BITS:
                    effective[descriptor] = True
        return sorted(d for d, allowed in effective.items() if allowed)

    def confirm_approval(
        self, repository: str, *, request: str, reviewer_login: str, review_id: str
    ) -> ConfirmedApproval:
        """The pull request (Pull Requests - Get Pull Request By Id:
        `createdBy.uniqueName`, `repository`, `targetRefName`,
        `lastMergeSourceCommit.commitId`, `forkSource`) and its reviewers (Pull Request
        Reviewers - List: `IdentityRefWithVote`), read with the app token. Approved when
        a reviewer who is a person (not `isContainer`) whose `uniqueName` or `id` is
        `reviewer_login` votes 10. Azure ties no vote to a commit: `commit` is the
        request's `lastMergeSourceCommit` (a branch policy may reset votes on a push). A
        `forkSource` names the fork as `project/repo`. `review_id` is unused."""
        if not (request.isascii() and request.isdigit()):
            raise ForgeInvalid(_FORGE, "confirm approval", 0, f"{request!r} is no request id")
        auth = self.push_header()
        pull = self._call("GET", repository, f"pullrequests/{request}", "read request", auth, None)
        reviewers = _values(
            self._call(
                "GET", repository, f"pullrequests/{request}/reviewers", "read reviewers",
                auth, None,
            ),
            "read reviewers",
        )  # fmt: skip
        if not isinstance(pull, dict):
            raise ForgeUnavailable(_FORGE, "read request", 0, "the answer is no object")
        wanted = reviewer_login.casefold()
        approved = any(
            r.get("vote") == APPROVED
            and not r.get("isContainer")
            and wanted in (str(r.get("uniqueName", "")).casefold(), str(r.get("id", "")))
            for r in reviewers
        )
        base = _repository_name(pull.get("repository"))
        fork = pull.get("forkSource")
        head = _repository_name(fork.get("repository")) if isinstance(fork, dict) else base
        return ConfirmedApproval(
            approved=approved,
            commit=str((pull.get("lastMergeSourceCommit") or {}).get("commitId") or ""),
            head_repository=head,
            base_repository=base,
            base_branch=str(pull.get("targetRefName") or "").removeprefix("refs/heads/"),
            author_login=str((pull.get("createdBy") or {}).get("uniqueName") or ""),
            commit_bound=False,  # no commit per approval: the head now
        )

    def user_login(self, user_token: str) -> str:
        """The account `user_token` authenticates, as `createdBy.uniqueName` names it on
        the requests it opens: `authenticatedUser.properties.Account.$value` of
        `GET {organisation}/_apis/connectionData` (the Location service's connection data,
        answered on the organisation's own host; the profile API,
        `app.vssps.visualstudio.com/_apis/profile/profiles/me`, is on another host the
        factory does not trust with the token). An answer without an account (an
        anonymous connection) is `ForgeUnauthorized`."""
        answer = self._http.request(
            "GET",
            "_apis/connectionData",
            call="read connection data",
            auth=authorization(user_token),
            params={"api-version": CONNECTION_DATA_VERSION},
        )
        user = answer.get("authenticatedUser") if isinstance(answer, dict) else None
        account = ((user or {}).get("properties") or {}).get("Account") or {}
        value = account.get("$value") if isinstance(account, dict) else None
        if not isinstance(value, str) or not value:
            raise ForgeUnauthorized(
                _FORGE, "read connection data", 0, "the token authenticates no account"
            )
        return value

    def close(self) -> None:
        """Close the HTTP connections."""
        self._http.close()

    def _active_request(self, draft: RequestDraft, auth: str) -> OpenedRequest | None:
        found = self._call(
            "GET",
            draft.repository,
            "pullrequests",
            "find request",
            auth,
            None,
            params={
                "searchCriteria.sourceRefName": f"refs/heads/{draft.branch}",
                "searchCriteria.status": "active",
            },
        )
        values = _values(found, "find request")
        return self._opened(draft.repository, values[0]) if values else None

    def _opened(self, repository: str, pull: Any) -> OpenedRequest:
        if not isinstance(pull, dict) or not isinstance(pull.get("pullRequestId"), int):
            raise ForgeUnavailable(_FORGE, "open request", 0, "answer without pullRequestId")
        number = str(pull["pullRequestId"])
        project, repo = _split(repository)
        url = f"{self._web}/{quote(project)}/_git/{quote(repo)}/pullrequest/{number}"
        created_by = pull.get("createdBy") or {}
        author = created_by.get("uniqueName") or created_by.get("displayName") or ""
        return OpenedRequest(number=number, url=url, author=str(author))

    def _call(
        self,
        method: str,
        repository: str,
        tail: str,
        call: str,
        auth: str,
        body: Any,
        *,
        params: dict[str, str] | None = None,
    ) -> Any:
        project, repo = _split(repository)
        path = f"{quote(project, safe='')}/_apis/git/repositories/{quote(repo, safe='')}"
        return self._http.request(
            method,
            f"{path}/{tail}" if tail else path,
            call=call,
            auth=auth,
            json_body=body,
            params={**(params or {}), "api-version": API_VERSION},
        )


def _state(verdict: CommitVerdict) -> str:
    if verdict.state not in _STATES:
        raise ForgeInvalid(_FORGE, "set status", 0, f"{verdict.state!r} is no verdict state")
    return _STATES[verdict.state]


def _repository_name(repository: Any) -> str:
    """A `GitRepository` as `project/repo`; "" when the answer names none."""
    if not isinstance(repository, dict):
        return ""
    project = (repository.get("project") or {}).get("name") or ""
    name = repository.get("name") or ""
    return f"{project}/{name}" if project and name else ""


def _split(repository: str) -> tuple[str, str]:
    parts = repository.split("/")
    if len(parts) != 2 or not all(parts):
        raise ForgeInvalid(_FORGE, "repository", 0, f"{repository!r} is not project/repo")
    return parts[0], parts[1]


def ref_token(ref: str) -> str:
    """A branch in a Git repositories security token: `refs/heads/` then each name segment
    as hex of its UTF-16LE bytes (`main` → `6d00610069006e00`)."""
    name = ref.removeprefix("refs/heads/")
    return "refs/heads/" + "/".join(part.encode("utf-16-le").hex() for part in name.split("/"))


def _lineage(repo_token: str, ref: str) -> list[str]:
    """Every security token from `repoV2` down to `ref`'s, widest first."""
    parts = f"{repo_token}/{ref_token(ref)}".split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _description(body: str) -> str:
    """`body` within Azure's 4,000 characters, cut at the end of a line when there is one
    (a cut inside an inline code span would let the rest of its line render as
    Markdown), the cut noted."""
    if len(body) <= DESCRIPTION_MAX:
        return body
    room = DESCRIPTION_MAX - len(TRUNCATED_NOTE)
    line_end = body.rfind("\n", 0, room + 1)
    return body[: line_end if line_end > 0 else room] + TRUNCATED_NOTE


def _values(answer: Any, call: str) -> list[dict[str, Any]]:
    """The `value` array of an Azure DevOps list answer (`{"count": n, "value": [...]}`)."""
    values = answer.get("value") if isinstance(answer, dict) else None
    if not isinstance(values, list):
        raise ForgeUnavailable(_FORGE, call, 0, "list answer without a value array")
    return [v for v in values if isinstance(v, dict)]


def _applies(policy: dict[str, Any], repository_id: str, ref: str, default_ref: str) -> bool:
    scopes = (policy.get("settings") or {}).get("scope") or []
    for scope in scopes:
        if not isinstance(scope, dict):
            continue
        if scope.get("repositoryId") not in (None, repository_id):
            continue
        kind = str(scope.get("matchKind") or "Exact").lower()
        name = scope.get("refName")
        if kind == "defaultbranch" and ref == default_ref:
            return True
        if kind == "exact" and (name is None or name == ref):
            return True
        if kind == "prefix" and isinstance(name, str) and ref.startswith(name):
            return True
    return False


def _protection(branch: str, policies: list[dict[str, Any]]) -> BranchProtection:
    approvals, dismisses, checks = 0, False, []
    for policy in policies:
        type_id = str((policy.get("type") or {}).get("id", "")).lower()
        settings = policy.get("settings") or {}
        if type_id == MINIMUM_REVIEWERS:
            count = int(settings.get("minimumApproverCount") or 0)
            others = count - 1 if settings.get("creatorVoteCounts") else count
            approvals = max(approvals, others)
            # requireVoteOnLastIteration blocks a merge but keeps the earlier votes: the
            # API still reports them, so only resetOnSourcePush drops a stale approval
            dismisses = dismisses or bool(settings.get("resetOnSourcePush"))
        elif type_id == STATUS:
            genre, name = settings.get("statusGenre") or "", settings.get("statusName") or ""
            checks.append(f"{genre}/{name}" if genre else str(name))
        elif type_id == BUILD:
            checks.append(
                str(settings.get("displayName") or f"build {settings.get('buildDefinitionId')}")
            )
    return BranchProtection(
        branch=branch,
        protected=bool(policies),
        required_approvals=max(approvals, 0),
        dismisses_stale_approvals=dismisses,
        admins_bypass=False,
        required_checks=tuple(checks),
    )
