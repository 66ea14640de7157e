"""A loopback stand-in of the GitHub REST API v3 as Enterprise Server serves it
(`<url>/api/v3`), for the endpoints `review.forges.github` calls:

- `GET  /repos/{o}/{r}/pulls?head=o:branch&state=open` → `200` list of pull requests
- `POST /repos/{o}/{r}/pulls` → `201` pull request; `422` "Validation Failed" when the head
  branch is not on the forge (`errors[].field: head`) or "A pull request already exists"
- `POST /repos/{o}/{r}/statuses/{sha}` → `201` status; `422` "No commit found for SHA"
- `POST /repos/{o}/{r}/code-scanning/sarifs` → `202` `{id, url}` (the SARIF gunzipped and
  parsed: a log that is not SARIF 2.1.0 is `400`)
- `GET  /repos/{o}/{r}/branches/{b}/protection` → `200` rules or `404` "Branch not protected"
- `GET  /repos/{o}/{r}/pulls/{n}` → `200` pull request (`head.repo`, `base.repo`, `user`)
- `GET  /repos/{o}/{r}/pulls/{n}/reviews/{id}` → `200` review (`user`, `state`, `commit_id`);
  `GET /repos/{o}/{r}/pulls/{n}/reviews` → `200` list, oldest first (`per_page`, `page`)
- `GET  /user` → `200` the token's user; an installation (app) token is `403` "Resource not
  accessible by integration", as GitHub answers it

Request bodies are checked against the documented request schema: an unknown key, a
missing required key or a wrong type is GitHub's `422` "Invalid request." with its
`documentation_url`. Tokens (`Authorization: Bearer|token <t>`) are the app's (`app`) or a
user's (login): an unknown one is `401` "Bad credentials". Repositories and branches are
those of the git stand-in (`git_http.GitHttpStandin`), so a pull request needs its pushed
branch. `fail_next` injects 401, 403, 404, 409, 422, 5xx and rate limits (`403` with
`x-ratelimit-remaining: 0` or `429`, `retry-after`).
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from tests.forge_standins.git_http import GitHttpStandin
from tests.forge_standins.loopback import Answer, Fault, Invalid, LoopbackApi, Seen, check_fields

DOCS = "https://docs.github.com/enterprise-server@3.14/rest"
_PULLS = re.compile(r"/api/v3/repos/([^/]+)/([^/]+)/pulls")
_STATUS = re.compile(r"/api/v3/repos/([^/]+)/([^/]+)/statuses/([0-9a-f]{40})")
_SARIFS = re.compile(r"/api/v3/repos/([^/]+)/([^/]+)/code-scanning/sarifs")
_PROTECTION = re.compile(r"/api/v3/repos/([^/]+)/([^/]+)/branches/(.+)/protection")
_PULL = re.compile(r"/api/v3/repos/([^/]+)/([^/]+)/pulls/([0-9]+)")
_REVIEW = re.compile(r"/api/v3/repos/([^/]+)/([^/]+)/pulls/([0-9]+)/reviews/([0-9]+)")
_REVIEWS = re.compile(r"/api/v3/repos/([^/]+)/([^/]+)/pulls/([0-9]+)/reviews")

PULL_REQUEST_FIELDS: dict[str, Any] = {
    "required": {"title": str, "head": str, "base": str},
    "optional": {
        "head_repo": str,
        "body": str,
        "maintainer_can_modify": bool,
        "draft": bool,
        "issue": int,
    },
}
STATUS_FIELDS: dict[str, Any] = {
    "required": {"state": str},
    "optional": {"target_url": (str, type(None)), "description": (str, type(None)), "context": str},
}
SARIF_FIELDS: dict[str, Any] = {
    "required": {"commit_sha": str, "ref": str, "sarif": str},
    "optional": {"checkout_uri": str, "started_at": str, "tool_name": str, "validate": bool},
}


@dataclass
class PullRequest:
    number: int
    owner: str
    repo: str
    title: str
    body: str
    head: str
    base: str
    draft: bool
    opened_by: str
    sha: str
    state: str = "open"
    head_repo: str | None = ""
    """`owner/name` of the head branch's repository: "" the base itself, None a deleted
    fork (GitHub answers `head.repo: null`)."""


@dataclass
class Review:
    id: int
    number: int
    """The pull request's number."""
    login: str
    state: str
    """`APPROVED`, `CHANGES_REQUESTED`, `COMMENTED`, `DISMISSED`, `PENDING`."""
    commit_id: str


@dataclass
class Status:
    sha: str
    state: str
    context: str
    description: str
    target_url: str | None
    set_by: str


@dataclass
class SarifUpload:
    id: str
    commit_sha: str
    ref: str
    log: dict[str, Any]
    sent_by: str


@dataclass
class GitHubStandin(LoopbackApi):
    """GitHub Enterprise Server's REST API for one app token and some users' tokens."""

    git: GitHttpStandin
    app_token: str
    user_tokens: dict[str, str]
    """token → login"""
    pulls: list[PullRequest] = field(default_factory=list)
    statuses: list[Status] = field(default_factory=list)
    sarifs: list[SarifUpload] = field(default_factory=list)
    protections: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    """(`owner/name`, branch) → the protection answer's body."""
    reviews: list[Review] = field(default_factory=list)

    def review(self, number: int, login: str, state: str = "APPROVED", commit: str = "") -> int:
        """Record a review of pull request `number` by `login` (of its head by default);
        returns the review's id."""
        pull = next(p for p in self.pulls if p.number == number)
        made = Review(3000 + len(self.reviews), number, login, state, commit or pull.sha)
        self.reviews.append(made)
        return made.id

    def __post_init__(self) -> None:
        LoopbackApi.__init__(self)

    def who(self, authorization: str) -> str:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() not in ("bearer", "token") or not token:
            return ""
        if token == self.app_token:
            return "app"
        return self.user_tokens.get(token, "")

    def unauthorized(self) -> Answer:
        return Answer(
            401, {"message": "Bad credentials", "documentation_url": DOCS, "status": "401"}
        )

    def fault_answer(self, fault: Fault) -> Answer:
        headers: dict[str, str] = {}
        if fault.retry_after is not None:
            headers["retry-after"] = fault.retry_after
        if fault.rate_limit:
            headers["x-ratelimit-remaining"] = "0"
            headers["x-ratelimit-limit"] = "5000"
            message = "API rate limit exceeded for installation ID 1."
        else:
            message = {
                401: "Bad credentials",
                403: "Resource not accessible by integration",
                404: "Not Found",
                409: "Conflict",
                422: "Validation Failed",
                429: "Too Many Requests",
            }.get(fault.status, "Server Error")
        body = (
            fault.body
            if fault.body is not None
            else {
                "message": message,
                "documentation_url": DOCS,
                "status": str(fault.status),
            }
        )
        return Answer(fault.status, body, headers)

    def handle(self, seen: Seen) -> Answer:
        if seen.path == "/api/v3/user" and seen.method == "GET":
            return self._user(seen)
        for pattern, method, handler in (
            (_PULL, "GET", self._get_pull),
            (_REVIEW, "GET", self._get_review),
            (_REVIEWS, "GET", self._list_reviews),
            (_PULLS, "GET", self._list_pulls),
            (_PULLS, "POST", self._create_pull),
            (_STATUS, "POST", self._create_status),
            (_SARIFS, "POST", self._upload_sarif),
            (_PROTECTION, "GET", self._protection),
        ):
            found = pattern.fullmatch(seen.path)
            if found and seen.method == method:
                owner, repo = found.group(1), found.group(2)
                if not self.git.exists(f"{owner}/{repo}"):
                    return _not_found()
                return handler(seen, owner, repo, *found.groups()[2:])
        return _not_found()

    def _list_pulls(self, seen: Seen, owner: str, repo: str) -> Answer:
        head = seen.query.get("head", "")
        state = seen.query.get("state", "open")
        found = [
            self._pull_json(p)
            for p in self.pulls
            if p.owner == owner
            and p.repo == repo
            and (not head or f"{p.owner}:{p.head}" == head)
            and (state == "all" or p.state == state)
        ]
        return Answer(200, found)

    def _create_pull(self, seen: Seen, owner: str, repo: str) -> Answer:
        body = _validated(seen.body, PULL_REQUEST_FIELDS, "pulls/pulls#create-a-pull-request")
        sha = self.git.head(f"{owner}/{repo}", body["head"])
        if sha is None or self.git.head(f"{owner}/{repo}", body["base"]) is None:
            field_name = "head" if sha is None else "base"
            return _validation(
                [{"resource": "PullRequest", "field": field_name, "code": "invalid"}]
            )
        if any(
            p.owner == owner and p.repo == repo and p.head == body["head"] and p.state == "open"
            for p in self.pulls
        ):
            return _validation(
                [
                    {
                        "resource": "PullRequest",
                        "code": "custom",
                        "message": f"A pull request already exists for {owner}:{body['head']}.",
                    }
                ]
            )
        pull = PullRequest(
            number=len(self.pulls) + 1,
            owner=owner,
            repo=repo,
            title=body["title"],
            body=body.get("body", ""),
            head=body["head"],
            base=body["base"],
            draft=body.get("draft", False),
            opened_by=seen.who,
            sha=sha,
        )
        self.pulls.append(pull)
        return Answer(201, self._pull_json(pull))

    def _user(self, seen: Seen) -> Answer:
        if seen.who == "app":
            return Answer(
                403,
                {
                    "message": "Resource not accessible by integration",
                    "documentation_url": f"{DOCS}/users/users#get-the-authenticated-user",
                    "status": "403",
                },
            )
        return Answer(200, _user_json(seen.who))

    def _get_pull(self, seen: Seen, owner: str, repo: str, number: str) -> Answer:
        for pull in self.pulls:
            if (pull.owner, pull.repo, pull.number) == (owner, repo, int(number)):
                return Answer(200, self._pull_json(pull))
        return _not_found()

    def _list_reviews(self, seen: Seen, owner: str, repo: str, number: str) -> Answer:
        if not any((p.owner, p.repo, p.number) == (owner, repo, int(number)) for p in self.pulls):
            return _not_found()
        size = int(seen.query.get("per_page", "30"))
        page = int(seen.query.get("page", "1"))
        if not 1 <= size <= 100 or page < 1:
            return _invalid("Invalid request.\n\nper_page or page out of range.", "pulls")
        mine = [r for r in self.reviews if r.number == int(number)]
        chunk = mine[(page - 1) * size : page * size]
        return Answer(200, [self._review_json(owner, repo, r) for r in chunk])

    def _get_review(self, seen: Seen, owner: str, repo: str, number: str, id_: str) -> Answer:
        pull = next(
            (p for p in self.pulls if (p.owner, p.repo, p.number) == (owner, repo, int(number))),
            None,
        )
        found = next(
            (r for r in self.reviews if r.id == int(id_) and r.number == int(number)), None
        )
        if pull is None or found is None:
            return _not_found()
        return Answer(200, self._review_json(owner, repo, found))

    def _review_json(self, owner: str, repo: str, found: Review) -> dict[str, Any]:
        number = found.number
        api = f"{self.url}/api/v3/repos/{owner}/{repo}/pulls/{number}"
        return dict(
            {
                "id": found.id,
                "node_id": f"PRR_{found.id}",
                "user": _user_json(found.login),
                "body": "",
                "state": found.state,
                "html_url": f"{self.url}/{owner}/{repo}/pull/{number}#pullrequestreview-{found.id}",
                "pull_request_url": api,
                "submitted_at": "2026-11-30T06:00:00Z",
                "commit_id": found.commit_id,
                "author_association": "MEMBER",
            }
        )

    def _pull_json(self, pull: PullRequest) -> dict[str, Any]:
        api = f"{self.url}/api/v3/repos/{pull.owner}/{pull.repo}"
        base_repo = f"{pull.owner}/{pull.repo}"
        head_repo = base_repo if pull.head_repo == "" else pull.head_repo
        return {
            "id": 1000 + pull.number,
            "node_id": f"PR_{pull.number}",
            "number": pull.number,
            "url": f"{api}/pulls/{pull.number}",
            "html_url": f"{self.url}/{pull.owner}/{pull.repo}/pull/{pull.number}",
            "state": pull.state,
            "locked": False,
            "title": pull.title,
            "body": pull.body,
            "draft": pull.draft,
            "user": {
                "login": pull.opened_by,
                "id": 1,
                "type": "Bot" if pull.opened_by == "app" else "User",
            },
            "head": {
                "label": f"{pull.owner}:{pull.head}",
                "ref": pull.head,
                "sha": pull.sha,
                "repo": None if head_repo is None else _repo_json(head_repo),
            },
            "base": {
                "label": f"{pull.owner}:{pull.base}",
                "ref": pull.base,
                "sha": "",
                "repo": _repo_json(base_repo),
            },
            "merged": False,
        }

    def _create_status(self, seen: Seen, owner: str, repo: str, sha: str) -> Answer:
        body = _validated(seen.body, STATUS_FIELDS, "commits/statuses#create-a-commit-status")
        if body["state"] not in ("error", "failure", "pending", "success"):
            return _invalid(
                f"For 'properties/state', \"{body['state']}\" is not one of "
                "['error', 'failure', 'pending', 'success'].",
                "commits/statuses#create-a-commit-status",
            )
        if not self.git.has_commit(f"{owner}/{repo}", sha):
            return Answer(
                422, {"message": f"No commit found for SHA: {sha}", "documentation_url": DOCS}
            )
        status = Status(
            sha=sha,
            state=body["state"],
            context=body.get("context", "default"),
            description=body.get("description") or "",
            target_url=body.get("target_url"),
            set_by=seen.who,
        )
        self.statuses.append(status)
        return Answer(
            201,
            {
                "url": f"{self.url}/api/v3/repos/{owner}/{repo}/statuses/{sha}",
                "id": len(self.statuses),
                "node_id": f"SC_{len(self.statuses)}",
                "state": status.state,
                "description": status.description,
                "target_url": status.target_url,
                "context": status.context,
                "created_at": "2026-11-30T05:00:00Z",
                "updated_at": "2026-11-30T05:00:00Z",
                "creator": {"login": seen.who, "id": 2, "type": "Bot"},
            },
        )

    def _upload_sarif(self, seen: Seen, owner: str, repo: str) -> Answer:
        body = _validated(
            seen.body, SARIF_FIELDS, "code-scanning/code-scanning#upload-an-analysis-as-sarif-data"
        )
        if not re.fullmatch(r"[0-9a-f]{40}", body["commit_sha"]) or not body["ref"].startswith(
            "refs/"
        ):
            return _invalid("Invalid request.\n\nInvalid commit_sha or ref.", "code-scanning")
        try:
            log = json.loads(gzip.decompress(base64.b64decode(body["sarif"], validate=True)))
        except (ValueError, OSError):
            return Answer(
                400,
                {
                    "message": "A parse error occurred: the sarif is not gzipped, base64 JSON",
                    "documentation_url": DOCS,
                },
            )
        if (
            not isinstance(log, dict)
            or log.get("version") != "2.1.0"
            or not isinstance(log.get("runs"), list)
        ):
            return Answer(
                400,
                {
                    "message": "Invalid SARIF: version 2.1.0 with runs is required",
                    "documentation_url": DOCS,
                },
            )
        upload = SarifUpload(str(uuid.uuid4()), body["commit_sha"], body["ref"], log, seen.who)
        self.sarifs.append(upload)
        return Answer(
            202,
            {
                "id": upload.id,
                "url": f"{self.url}/api/v3/repos/{owner}/{repo}/code-scanning/sarifs/{upload.id}",
            },
        )

    def _protection(self, seen: Seen, owner: str, repo: str, branch: str) -> Answer:
        rules = self.protections.get((f"{owner}/{repo}", branch))
        if rules is None:
            return Answer(
                404, {"message": "Branch not protected", "documentation_url": DOCS, "status": "404"}
            )
        return Answer(200, rules)


def _user_json(login: str) -> dict[str, Any]:
    return {"login": login, "id": sum(map(ord, login)), "type": "User", "site_admin": False}


def _repo_json(full_name: str) -> dict[str, Any]:
    owner, _, name = full_name.partition("/")
    return {
        "id": sum(map(ord, full_name)),
        "name": name,
        "full_name": full_name,
        "owner": {"login": owner},
        "fork": False,
    }


def _not_found() -> Answer:
    return Answer(404, {"message": "Not Found", "documentation_url": DOCS, "status": "404"})


def _invalid(message: str, doc: str) -> Answer:
    return Answer(422, {"message": message, "documentation_url": f"{DOCS}/{doc}", "status": "422"})


def _validation(errors: list[dict[str, str]]) -> Answer:
    return Answer(
        422,
        {
            "message": "Validation Failed",
            "errors": errors,
            "documentation_url": DOCS,
            "status": "422",
        },
    )


def _validated(body: Any, schema: dict[str, Any], doc: str) -> dict[str, Any]:
    problem = check_fields(body, required=schema["required"], optional=schema["optional"])
    if problem is None:
        return dict(body)
    kind, key = problem
    message = {
        "not-object": "Invalid request.\n\nThe body is not a JSON object.",
        "unknown": f'Invalid request.\n\n"{key}" is not a permitted key.',
        "missing": f'Invalid request.\n\n"{key}" wasn\'t supplied.',
        "type": f"Invalid request.\n\nFor 'properties/{key}', {_shown(body, key)} is not "
        "of the documented type.",
    }[kind]
    raise Invalid(_invalid(message, doc))


def _shown(body: Any, key: str) -> str:
    return json.dumps(body.get(key) if isinstance(body, dict) else None)
