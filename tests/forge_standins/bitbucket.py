"""Stand-ins for Bitbucket Cloud (REST 2.0 under `<base_url>/2.0`) and Bitbucket Data Center
(`<base_url>/rest/...`): the endpoints `BitbucketHost` calls, answered with the shapes
developer.atlassian.com documents (Cloud `pullrequest`, `commitstatus`, `branchrestriction`,
`branching_model`, paged as `{"size", "page", "pagelen", "next", "values"}`; Data Center
`RestPullRequest`, paged as `{"size", "limit", "isLastPage", "start", "values",
"nextPageStart"}`, build status `204`).

Each checks `Authorization: Bearer <token>`, the path, the query keys and each body's
required fields, types and allowed fields, and refuses in the vendor's own shape: Cloud
`{"type": "error", "error": {"message", "fields"?}}`, Data Center `{"errors": [{"context",
"message", "exceptionName"}]}`. Data Center refuses a second open request for the same
branches with `409` `DuplicatePullRequestException` (documented); for Cloud, whose reference
does not say, this stand-in answers the open request (`200`) rather than open a second.

For approvals and accounts: Cloud serves `GET .../pullrequests/{id}` (`participants`,
`source.commit.hash` in 12 digits as Cloud gives it), `GET .../commit/{hash}` (the full
hash of a known head, from a prefix) and `GET /2.0/user`; Data Center serves
`GET .../pull-requests/{id}` (`reviewers`, `fromRef.latestCommit`) and
`GET /rest/api/1.0/application-properties`, and names the authenticated user in the
`X-AUSERNAME` header of every authenticated answer, as Data Center does. `heads` maps a
branch to its commit (else `git_head`, the git stand-in's pushed branch, else a digest of its
name); `approve(id, name)` records an approval.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.context_standins.vendors import Answer, RecordedRequest
from tests.forge_standins.recording import ForgeStandin, running

SPONSOR_TOKEN = "bb-sponsor-oauth-access-token"
APP_TOKEN = "bb-factory-repository-access-token"
SPONSOR = "sponsor"
FACTORY = "codefactory-bot"
STATUS_STATES = {"SUCCESSFUL", "FAILED", "INPROGRESS", "STOPPED"}
DC_STATUS_STATES = {"SUCCESSFUL", "FAILED", "INPROGRESS"}


def head_of(
    heads: dict[str, str], branch: str, git_head: Callable[[str], str | None] | None = None
) -> str:
    """The commit `branch` points at: `heads`, else what the git host holds (`git_head`),
    else a digest of its name."""
    held = heads.get(branch) or (git_head(branch) if git_head is not None else None)
    return held or hashlib.sha1(branch.encode()).hexdigest()


def bearer(headers: dict[str, str], tokens: dict[str, str]) -> str | None:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return tokens.get(token) if scheme == "Bearer" else None


def _kinds_fit(value: Any, kind: type) -> bool:
    return isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool)


def problem(body: Any, required: dict[str, type], optional: dict[str, type]) -> str | None:
    """What is wrong with `body` against a documented request object; None: nothing."""
    if not isinstance(body, dict):
        return "the body is not a JSON object"
    for key in body:
        if key not in required and key not in optional:
            return f"unknown field: {key}"
    for key, kind in required.items():
        if key not in body:
            return f"{key}: this field is required"
        if not _kinds_fit(body[key], kind):
            return f"{key}: expected {kind.__name__}"
    for key, kind in optional.items():
        if key in body and body[key] is not None and not _kinds_fit(body[key], kind):
            return f"{key}: expected {kind.__name__}"
    return None


# --- Bitbucket Cloud -------------------------------------------------------------------


def cloud_error(message: str, fields: dict[str, list[str]] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"message": message}
    if fields:
        error["fields"] = fields
    return {"type": "error", "error": error}


def restriction(kind: str, pattern: str = "main", **extra: Any) -> dict[str, Any]:
    """A Cloud `branchrestriction` (glob match unless `branch_match_kind` says otherwise)."""
    return {
        "type": "branchrestriction",
        "id": 0,
        "kind": kind,
        "branch_match_kind": "glob",
        "pattern": pattern,
        "value": None,
        "users": [],
        "groups": [],
        **extra,
    }


@dataclass
class BitbucketStandin(ForgeStandin):
    """What the Cloud and Data Center stand-ins share: the sponsor's and the factory's bearer
    tokens by default, and where a branch points."""

    heads: dict[str, str] = field(default_factory=dict)
    """Branch → the commit it points at (else `git_head`'s answer, else a digest of its
    name)."""
    git_head: Callable[[str], str | None] | None = None
    """The commit the git host holds at a branch (None: no such branch), as the forge reads
    the pushed branch: an end-to-end test passes the git stand-in's."""

    def __post_init__(self) -> None:
        self.tokens = self.tokens or {SPONSOR_TOKEN: SPONSOR, APP_TOKEN: FACTORY}

    def identity(self, headers: dict[str, str]) -> str | None:
        return bearer(headers, self.tokens)


@dataclass
class BitbucketCloudStandin(BitbucketStandin):
    workspace: str = "acme-bank"
    repository: str = "payments-api"
    pulls: list[dict[str, Any]] = field(default_factory=list)
    statuses: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    """(commit, key) → the commit status (a status with the same key is replaced)."""
    restrictions: list[dict[str, Any]] = field(default_factory=list)
    branching_model: dict[str, Any] = field(default_factory=dict)

    def approve(
        self, pull_id: int, name: str, approved: bool = True, *, account_id: str = ""
    ) -> None:
        """`name` approves request `pull_id` (a participant, as Cloud lists one); its
        Atlassian `account_id` is `account_id` when given, else one derived from `name`."""
        pull = next(p for p in self.pulls if p["id"] == pull_id)
        user = self.user(name) | ({"account_id": account_id} if account_id else {})
        pull["participants"].append(
            {
                "type": "participant",
                "user": user,
                "role": "REVIEWER",
                "approved": approved,
                "state": "approved" if approved else None,
                "participated_on": "2026-11-30T06:10:00.000000+00:00",
            }
        )

    def repository_json(self, full_name: str = "") -> dict[str, Any]:
        full_name = full_name or f"{self.workspace}/{self.repository}"
        return {
            "type": "repository",
            "full_name": full_name,
            "name": full_name.split("/")[-1],
            "uuid": "{" + str(uuid.uuid5(uuid.NAMESPACE_DNS, full_name)) + "}",
        }

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/2.0"

    def vendor_error(self, status: int, message: str, exception: str = "") -> Any:
        return cloud_error(message)

    def unauthorized(self) -> Answer:
        return 401, cloud_error("Token is invalid or not supported for this endpoint.")

    def user(self, name: str) -> dict[str, Any]:
        return {
            "type": "user",
            "display_name": name.title(),
            "nickname": name,
            "uuid": "{" + str(uuid.uuid5(uuid.NAMESPACE_DNS, name)) + "}",
            "account_id": "5b10ac8d82e05b22cc7d" + hashlib.sha1(name.encode()).hexdigest()[:4],
        }

    def route(self, request: RecordedRequest) -> Answer:
        if request.path == "/2.0/user" and request.method == "GET":
            self.did("read user", request)
            return 200, self.user(self.identity(request.headers) or "")
        base = f"/2.0/repositories/{self.workspace}/{self.repository}"
        if not request.path.startswith(base + "/"):
            return 404, cloud_error(f"Repository {request.path} not found")
        tail = request.path[len(base) :]
        one = re.fullmatch(r"/pullrequests/([0-9]+)", tail)
        if one and request.method == "GET":
            pull = next((p for p in self.pulls if p["id"] == int(one[1])), None)
            if pull is None:
                return 404, cloud_error(f"There are no pull requests with id {one[1]}")
            self.did("read request", request)
            return 200, pull
        commit = re.fullmatch(r"/commit/([0-9a-f]{7,40})", tail)
        if commit and request.method == "GET":
            return self._commit(commit[1], request)
        if tail == "/pullrequests" and request.method == "GET":
            return self._search(request)
        if tail == "/pullrequests" and request.method == "POST":
            return self._create(request)
        status = re.fullmatch(r"/commit/([0-9a-f]{40})/statuses/build", tail)
        if status and request.method == "POST":
            return self._status(status[1], request)
        if tail == "/branch-restrictions" and request.method == "GET":
            return self._restrictions(request)
        if tail == "/branching-model" and request.method == "GET":
            self.did("read branching model", request)
            return 200, {"type": "branching_model", **self.branching_model}
        return 404, cloud_error(f"Resource {request.path} not found")

    def _commit(self, prefix: str, request: RecordedRequest) -> Answer:
        known = {
            head_of(self.heads, p["source"]["branch"]["name"], self.git_head) for p in self.pulls
        }
        found = [c for c in known | set(self.heads.values()) if c.startswith(prefix)]
        if len(found) != 1:
            return 404, cloud_error(f"Commit not found: {prefix}")
        self.did("read commit", request)
        return 200, {
            "type": "commit",
            "hash": found[0],
            "repository": self.repository_json(),
            "message": "change\n",
            "date": "2026-11-30T05:00:00+00:00",
        }

    def _page(self, request: RecordedRequest, values: list[dict[str, Any]]) -> Answer:
        page = int(request.query.get("page", ["1"])[0])
        size = int(request.query.get("pagelen", ["10"])[0])
        if not 1 <= size <= 100:
            return 400, cloud_error("Invalid pagelen")
        chunk = values[(page - 1) * size : page * size]
        answer: dict[str, Any] = {
            "size": len(values),
            "page": page,
            "pagelen": size,
            "values": chunk,
        }
        if page * size < len(values):
            answer["next"] = f"{self.api_url}{request.path}?page={page + 1}&pagelen={size}"
        return 200, answer

    def _search(self, request: RecordedRequest) -> Answer:
        unknown = set(request.query) - {"q", "state", "page", "pagelen", "sort", "fields"}
        if unknown:
            return 400, cloud_error(f"Unknown query parameters: {sorted(unknown)}")
        query = request.query.get("q", [""])[0]
        match = re.fullmatch(
            r'source\.branch\.name="((?:[^"\\]|\\.)*)" AND state="(OPEN|MERGED|DECLINED)"',
            query,
        )
        if match is None:
            return 400, cloud_error(f"Invalid query: {query}")
        branch = re.sub(r"\\(.)", r"\1", match[1])
        self.did("find request", request)
        if self.search_is_stale():
            return self._page(request, [])
        found = [
            p
            for p in self.pulls
            if p["source"]["branch"]["name"] == branch and p["state"] == match[2]
        ]
        return self._page(request, found)

    def _create(self, request: RecordedRequest) -> Answer:
        body = request.body
        wrong = problem(
            body,
            {"title": str, "source": dict},
            {
                "description": str,
                "destination": dict,
                "draft": bool,
                "close_source_branch": bool,
                "reviewers": list,
            },
        )
        branch_ref = {"branch": dict, "commit": dict, "repository": dict}
        for side in ("source", "destination"):
            if wrong is None and side in body:
                wrong = problem(body[side], {}, branch_ref) or problem(
                    body[side].get("branch", {}), {"name": str}, {}
                )
        if wrong is not None:
            return 400, cloud_error("Bad request", {"body": [wrong]})
        source = body["source"]["branch"]["name"]
        target = body.get("destination", {}).get("branch", {}).get("name", "main")
        for pull in self.pulls:
            if (
                pull["state"] == "OPEN"
                and pull["source"]["branch"]["name"] == source
                and pull["destination"]["branch"]["name"] == target
            ):
                return 200, pull
        number = len(self.pulls) + 1
        html = f"{self.base_url}/{self.workspace}/{self.repository}/pull-requests/{number}"
        pull = {
            "type": "pullrequest",
            "id": number,
            "title": body["title"],
            "description": body.get("description", ""),
            "state": "OPEN",
            "draft": bool(body.get("draft", False)),
            "author": self.user(self.identity(request.headers) or ""),
            "source": {
                "branch": {"name": source},
                "commit": {
                    "type": "commit",
                    "hash": head_of(self.heads, source, self.git_head)[:12],
                },
                "repository": self.repository_json(),
            },
            "destination": {
                "branch": {"name": target},
                "commit": {
                    "type": "commit",
                    "hash": head_of(self.heads, target, self.git_head)[:12],
                },
                "repository": self.repository_json(),
            },
            "participants": [],
            "reviewers": [],
            "close_source_branch": bool(body.get("close_source_branch", False)),
            "created_on": "2026-11-30T06:00:00.000000+00:00",
            "links": {
                "self": {
                    "href": f"{self.api_url}/repositories/{self.workspace}/"
                    f"{self.repository}/pullrequests/{number}"
                },
                "html": {"href": html},
            },
        }
        self.pulls.append(pull)
        self.did("open request", request)
        return 201, pull

    def _status(self, commit: str, request: RecordedRequest) -> Answer:
        body = request.body
        wrong = problem(
            body,
            {"key": str, "state": str, "url": str},
            {"name": str, "description": str, "refname": str},
        )
        if wrong is None and body["state"] not in STATUS_STATES:
            wrong = f"state: expected one of {sorted(STATUS_STATES)}"
        if wrong is not None:
            return 400, cloud_error("Bad request", {"body": [wrong]})
        replaced = (commit, body["key"]) in self.statuses
        status = {
            "type": "build",
            **body,
            "commit": commit,
            "created_on": "2026-11-30T06:00:00.000000+00:00",
            "set_by": self.identity(request.headers),
        }
        self.statuses[(commit, body["key"])] = status
        self.did("set status", request)
        return (200 if replaced else 201), status

    def _restrictions(self, request: RecordedRequest) -> Answer:
        unknown = set(request.query) - {"kind", "pattern", "page", "pagelen"}
        if unknown:
            return 400, cloud_error(f"Unknown query parameters: {sorted(unknown)}")
        self.did("read restrictions", request)
        kind = request.query.get("kind", [None])[0]
        pattern = request.query.get("pattern", [None])[0]
        found = [
            {**r, "id": i + 1}
            for i, r in enumerate(self.restrictions)
            if kind in (None, r["kind"]) and pattern in (None, r.get("pattern"))
        ]
        return self._page(request, found)

    def summary(self, pull: dict[str, Any]) -> dict[str, Any]:
        """The request's source, target, draft flag, description and author, uniformly."""
        return {
            "source": pull["source"]["branch"]["name"],
            "target": pull["destination"]["branch"]["name"],
            "draft": pull["draft"],
            "description": pull["description"],
            "author": pull["author"]["nickname"],
        }


# --- Bitbucket Data Center -------------------------------------------------------------


def dc_error(message: str, exception: str, context: str | None = None) -> dict[str, Any]:
    return {"errors": [{"context": context, "message": message, "exceptionName": exception}]}


_DC_EXCEPTIONS = {
    400: "com.atlassian.bitbucket.validation.ArgumentValidationException",
    401: "com.atlassian.bitbucket.auth.IncorrectPasswordAuthenticationException",
    403: "com.atlassian.bitbucket.AuthorisationException",
    404: "com.atlassian.bitbucket.repository.NoSuchRepositoryException",
    409: "com.atlassian.bitbucket.pull.DuplicatePullRequestException",
    429: "com.atlassian.bitbucket.throttle.ResourceBusyException",
}


def permission(
    kind: str, matcher: str, matcher_type: str = "BRANCH", **extra: Any
) -> dict[str, Any]:
    """A Data Center ref restriction (`/rest/branch-permissions/2.0`)."""
    return {
        "id": 0,
        "scope": {"type": "REPOSITORY", "resourceId": 1},
        "type": kind,
        "matcher": {
            "id": matcher,
            "displayId": matcher.removeprefix("refs/heads/"),
            "type": {"id": matcher_type, "name": matcher_type.title()},
            "active": True,
        },
        "users": [],
        "groups": [],
        "accessKeys": [],
        **extra,
    }


def build_condition(target: str, keys: list[str], exempt: str | None = None) -> dict[str, Any]:
    """A required builds condition (`/rest/required-builds/latest`), `exempt` a source
    branch pattern."""

    def matcher(kind: str, value: str) -> dict[str, Any]:
        return {"id": value, "displayId": value, "type": {"id": kind, "name": kind.title()}}

    found: dict[str, Any] = {
        "id": 1,
        "buildParentKeys": keys,
        "refMatcher": matcher("BRANCH", target),
        "pullRequestCondition": True,
    }
    if exempt is not None:
        found["exemptRefMatcher"] = matcher("PATTERN", exempt)
    return found


def condition(target: str, approvals: int, matcher_type: str = "BRANCH") -> dict[str, Any]:
    """A default reviewers condition (`/rest/default-reviewers/1.0`)."""
    any_ref = {
        "id": "ANY_REF_MATCHER_ID",
        "displayId": "ANY_REF_MATCHER_ID",
        "type": {"id": "ANY_REF", "name": "Any ref"},
        "active": True,
    }
    return {
        "id": 0,
        "scope": {"type": "REPOSITORY", "resourceId": 1},
        "sourceRefMatcher": any_ref,
        "targetRefMatcher": {
            "id": target,
            "displayId": target.removeprefix("refs/heads/"),
            "type": {"id": matcher_type, "name": matcher_type.title()},
            "active": True,
        },
        "reviewers": [{"name": "reviewer", "id": 3, "type": "NORMAL"}],
        "requiredApprovals": approvals,
    }


@dataclass
class BitbucketDataCenterStandin(BitbucketStandin):
    project: str = "PAY"
    repository: str = "payments-api"
    pulls: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    restrictions: list[dict[str, Any]] = field(default_factory=list)
    conditions: list[dict[str, Any]] = field(default_factory=list)
    build_conditions: list[dict[str, Any]] | None = None
    """Required builds conditions (`/rest/required-builds/latest`); None: the merge check is
    not there (before 7.14), answered 404."""
    pull_request_settings: dict[str, Any] = field(
        default_factory=lambda: {
            "requiredAllApprovers": False,
            "requiredAllTasksComplete": False,
            "requiredApprovers": 0,
            "requiredSuccessfulBuilds": 0,
            "unapproveOnUpdate": False,
        }
    )

    def approve(self, pull_id: int, name: str, status: str = "APPROVED") -> None:
        """`name` reviews request `pull_id` with `status` (`APPROVED`, `NEEDS_WORK`)."""
        pull = next(p for p in self.pulls if p["id"] == pull_id)
        pull["reviewers"].append(
            {
                "user": {"name": name, "slug": name, "displayName": name.title(), "id": 9},
                "role": "REVIEWER",
                "approved": status == "APPROVED",
                "status": status,
                "lastReviewedCommit": pull["fromRef"]["latestCommit"],
            }
        )

    def answer_headers(self, request: RecordedRequest) -> dict[str, str]:
        """Data Center names the authenticated user on every answer it gives them."""
        name = self.identity(request.headers)
        return {"X-AUSERNAME": name, "X-AUSERID": str(len(name))} if name else {}

    def vendor_error(self, status: int, message: str, exception: str = "") -> Any:
        name = exception or _DC_EXCEPTIONS.get(status, "com.atlassian.bitbucket.ServiceException")
        return dc_error(message, name)

    def unauthorized(self) -> Answer:
        return 401, dc_error(
            "Authentication failed. Please check your credentials and try again.",
            _DC_EXCEPTIONS[401],
        )

    def route(self, request: RecordedRequest) -> Answer:
        repo = f"projects/{self.project}/repos/{self.repository}"
        path, method = request.path, request.method
        if path == f"/rest/api/1.0/{repo}/pull-requests" and method == "GET":
            return self._search(request)
        if path == f"/rest/api/1.0/{repo}/pull-requests" and method == "POST":
            return self._create(request)
        one = re.fullmatch(rf"/rest/api/1\.0/{repo}/pull-requests/([0-9]+)", path)
        if one and method == "GET":
            pull = next((p for p in self.pulls if p["id"] == int(one[1])), None)
            if pull is None:
                return 404, dc_error(
                    f"Pull request {one[1]} does not exist in {self.project}/{self.repository}.",
                    "com.atlassian.bitbucket.pull.NoSuchPullRequestException",
                )
            self.did("read request", request)
            return 200, pull
        if path == "/rest/api/1.0/application-properties" and method == "GET":
            return 200, {
                "version": "8.19.1",
                "buildNumber": "8019001",
                "buildDate": "1717000000000",
                "displayName": "Bitbucket",
            }
        if path == f"/rest/api/1.0/{repo}/settings/pull-requests" and method == "GET":
            self.did("read settings", request)
            return 200, self.pull_request_settings
        status = re.fullmatch(r"/rest/build-status/1\.0/commits/([0-9a-f]{40})", path)
        if status and method == "POST":
            return self._status(status[1], request)
        if path == f"/rest/branch-permissions/2.0/{repo}/restrictions" and method == "GET":
            self.did("read restrictions", request)
            return self._page(request, self.restrictions)
        builds = f"/rest/required-builds/latest/{repo}/conditions"
        if path == builds and method == "GET" and self.build_conditions is not None:
            self.did("read required builds", request)
            return self._page(request, self.build_conditions)
        if path == f"/rest/default-reviewers/1.0/{repo}/conditions" and method == "GET":
            self.did("read default reviewers", request)
            return 200, self.conditions
        if "/repos/" in path and f"/{repo}/" not in path + "/":
            return 404, dc_error(
                f"Repository {path.split('/repos/')[1].split('/')[0]} does not exist.",
                _DC_EXCEPTIONS[404],
            )
        return 404, dc_error(
            f"No resource at {path}", "com.atlassian.bitbucket.rest.NotFoundException"
        )

    def _page(self, request: RecordedRequest, values: list[dict[str, Any]]) -> Answer:
        start = int(request.query.get("start", ["0"])[0])
        limit = int(request.query.get("limit", ["25"])[0])
        chunk = values[start : start + limit]
        last = start + limit >= len(values)
        answer: dict[str, Any] = {
            "size": len(chunk),
            "limit": limit,
            "isLastPage": last,
            "start": start,
            "values": chunk,
        }
        if not last:
            answer["nextPageStart"] = start + limit
        return 200, answer

    def _search(self, request: RecordedRequest) -> Answer:
        allowed = {
            "at",
            "direction",
            "state",
            "order",
            "start",
            "limit",
            "withAttributes",
            "withProperties",
            "draft",
            "filterText",
        }
        unknown = set(request.query) - allowed
        if unknown:
            return 400, dc_error(
                f"Unknown query parameters: {sorted(unknown)}", _DC_EXCEPTIONS[400]
            )
        self.did("find request", request)
        if self.search_is_stale():
            return self._page(request, [])
        at = request.query.get("at", [None])[0]
        outgoing = request.query.get("direction", ["INCOMING"])[0] == "OUTGOING"
        state = request.query.get("state", ["OPEN"])[0]
        side = "fromRef" if outgoing else "toRef"
        found = [
            p
            for p in self.pulls
            if (at is None or p[side]["id"] == at) and (state == "ALL" or p["state"] == state)
        ]
        return self._page(request, found)

    def _ref(self, ref: Any) -> str | None:
        wrong = problem(
            ref, {"id": str}, {"repository": dict, "displayId": str, "latestCommit": str}
        )
        if wrong is None and "repository" in ref:
            repository = ref["repository"]
            wrong = problem(repository, {"slug": str}, {"project": dict, "id": int, "name": str})
            if wrong is None and repository.get("project", {}).get("key") != self.project:
                wrong = "repository.project.key: no such project"
        if wrong is None and not ref["id"].startswith("refs/heads/"):
            wrong = "id: a ref id is refs/heads/<branch>"
        return wrong

    def _create(self, request: RecordedRequest) -> Answer:
        body = request.body
        wrong = problem(
            body,
            {"title": str, "fromRef": dict, "toRef": dict},
            {
                "description": str,
                "draft": bool,
                "reviewers": list,
                "state": str,
                "open": bool,
                "closed": bool,
                "locked": bool,
            },
        )
        context = None
        for side in ("fromRef", "toRef"):
            if wrong is None:
                wrong, context = self._ref(body[side]), side
        if wrong is not None:
            return 400, dc_error(wrong, _DC_EXCEPTIONS[400], context)
        for pull in self.pulls:
            if (
                pull["state"] == "OPEN"
                and pull["fromRef"]["id"] == body["fromRef"]["id"]
                and pull["toRef"]["id"] == body["toRef"]["id"]
            ):
                answer = dc_error(
                    "Only one pull request may be open for a given source and target branch",
                    _DC_EXCEPTIONS[409],
                )
                answer["errors"][0]["existingPullRequest"] = pull
                return 409, answer
        name = self.identity(request.headers) or ""
        number = len(self.pulls) + 1
        repo_page = f"{self.base_url}/projects/{self.project}/repos/{self.repository}"
        href = f"{repo_page}/pull-requests/{number}"
        repository = {
            "slug": self.repository,
            "name": self.repository,
            "project": {"key": self.project},
        }
        pull = {
            "id": number,
            "version": 0,
            "title": body["title"],
            "description": body.get("description", ""),
            "state": "OPEN",
            "open": True,
            "closed": False,
            "draft": bool(body.get("draft", False)),
            "createdDate": 1796018400000,
            "updatedDate": 1796018400000,
            "fromRef": {
                "id": body["fromRef"]["id"],
                "displayId": body["fromRef"]["id"][11:],
                "latestCommit": head_of(self.heads, body["fromRef"]["id"][11:], self.git_head),
                "repository": repository,
            },
            "toRef": {
                "id": body["toRef"]["id"],
                "displayId": body["toRef"]["id"][11:],
                "repository": repository,
            },
            "locked": False,
            "author": {
                "user": {
                    "name": name,
                    "emailAddress": f"{name}@acme-bank.example",
                    "id": number,
                    "displayName": name.title(),
                    "active": True,
                    "slug": name,
                    "type": "NORMAL",
                },
                "role": "AUTHOR",
                "approved": False,
                "status": "UNAPPROVED",
            },
            "reviewers": [],
            "participants": [],
            "links": {"self": [{"href": href}]},
        }
        self.pulls.append(pull)
        self.did("open request", request)
        return 201, pull

    def _status(self, commit: str, request: RecordedRequest) -> Answer:
        body = request.body
        wrong = problem(
            body,
            {"state": str, "key": str, "url": str},
            {
                "name": str,
                "description": str,
                "dateAdded": int,
                "duration": int,
                "buildNumber": str,
                "parent": str,
                "ref": str,
            },
        )
        if wrong is None and body["state"] not in DC_STATUS_STATES:
            wrong = f"state: expected one of {sorted(DC_STATUS_STATES)}"
        if wrong is not None:
            return 400, dc_error(wrong, _DC_EXCEPTIONS[400])
        self.statuses.append({**body, "commit": commit, "set_by": self.identity(request.headers)})
        self.did("set status", request)
        return 204, None

    def summary(self, pull: dict[str, Any]) -> dict[str, Any]:
        return {
            "source": pull["fromRef"]["id"].removeprefix("refs/heads/"),
            "target": pull["toRef"]["id"].removeprefix("refs/heads/"),
            "draft": pull["draft"],
            "description": pull["description"],
            "author": pull["author"]["user"]["name"],
        }


@pytest.fixture
def bitbucket_cloud_standin() -> Iterator[BitbucketCloudStandin]:
    yield from running(BitbucketCloudStandin())


@pytest.fixture
def bitbucket_data_center_standin() -> Iterator[BitbucketDataCenterStandin]:
    yield from running(BitbucketDataCenterStandin())
