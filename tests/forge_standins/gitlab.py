"""A loopback stand-in of the GitLab REST API v4 (`<url>/api/v4`), for the endpoints
`review.forges.gitlab` calls; a project is its URL-encoded path (`group%2Fproject`):

- `GET  /projects/:id/merge_requests?source_branch=…&state=opened` → `200` list
- `POST /projects/:id/merge_requests` → `201` merge request (`draft` from the `Draft:`
  title prefix); `409` "Another open merge request already exists for this source branch";
  `400` when the source or target branch is not on the forge
- `POST /projects/:id/statuses/:sha` → `201` commit status; `404` "404 Commit Not Found";
  `400` "Cannot transition status via :… from :…" for the same state twice
- `GET  /projects/:id/protected_branches/:name` → `200` or `404` "404 Not found"
- `GET  /projects/:id/approvals`, `/approval_rules`, `GET /projects/:id` → `200`
- `GET  /projects/:id/merge_requests/:iid` → `200` merge request (`source_project_id`,
  `target_project_id`, `author`, `sha`); `/merge_requests/:iid/approvals` → `200`
  (`approved_by[].user`); `404` "404 Not found" for an unknown iid
- `GET  /projects/:numeric id` → a fork's project (`forks`); `GET /user` → the token's user

Bodies are checked against the documented parameters: a missing one is GitLab's `400`
`{"error": "<name> is missing"}`, a wrong type `{"error": "<name> is invalid"}`; an unknown
one is refused as `400` `{"error": "<name> does not have a valid value"}` (GitLab ignores
unknown parameters; the stand-in is stricter so a misspelt one cannot pass unseen). Tokens
(`Authorization: Bearer <t>`) are the app's (`app`) or a user's
(username): an unknown one is `401` `{"message": "401 Unauthorized"}`. Projects and branches
are the git stand-in's. `fail_next` injects 401, 403, 404, 409, 422, 5xx and `429` with
`Retry-After`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from tests.forge_standins.git_http import GitHttpStandin
from tests.forge_standins.loopback import Answer, Fault, Invalid, LoopbackApi, Seen, check_fields

_MRS = re.compile(r"/merge_requests")
_STATUS = re.compile(r"/statuses/([0-9a-f]{40})")
_PROTECTED = re.compile(r"/protected_branches/([^/]+)")
_APPROVALS = re.compile(r"/approvals")
_RULES = re.compile(r"/approval_rules")
_ONE = re.compile(r"")
_MR = re.compile(r"/merge_requests/([0-9]+)")
_MR_APPROVALS = re.compile(r"/merge_requests/([0-9]+)/approvals")
PROJECT_ID = 42

MERGE_REQUEST_FIELDS: dict[str, Any] = {
    "required": {"source_branch": str, "target_branch": str, "title": str},
    "optional": {
        "description": str,
        "assignee_id": int,
        "assignee_ids": list,
        "reviewer_ids": list,
        "labels": str,
        "milestone_id": int,
        "remove_source_branch": bool,
        "squash": bool,
        "allow_collaboration": bool,
        "target_project_id": int,
    },
}
STATUS_FIELDS: dict[str, Any] = {
    "required": {"state": str},
    "optional": {
        "ref": str,
        "name": str,
        "context": str,
        "target_url": str,
        "description": str,
        "coverage": float,
        "pipeline_id": int,
    },
}
STATES = ("pending", "running", "success", "failed", "canceled", "skipped")


@dataclass
class MergeRequest:
    iid: int
    project: str
    title: str
    description: str
    source_branch: str
    target_branch: str
    opened_by: str
    sha: str
    state: str = "opened"
    source_project_id: int = PROJECT_ID
    """Another id: the source branch lives in a fork (`GitLabStandin.forks`)."""
    approved_by: list[str] = field(default_factory=list)


@dataclass
class CommitStatus:
    sha: str
    state: str
    name: str
    description: str
    target_url: str
    set_by: str


@dataclass
class GitLabStandin(LoopbackApi):
    """GitLab's REST API v4 for one app token and some users' tokens."""

    git: GitHttpStandin
    app_token: str
    user_tokens: dict[str, str]
    """token → username"""
    merge_requests: list[MergeRequest] = field(default_factory=list)
    statuses: list[CommitStatus] = field(default_factory=list)
    protected: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    approvals: dict[str, dict[str, Any]] = field(default_factory=dict)
    approval_rules: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    pipeline_must_succeed: set[str] = field(default_factory=set)
    forks: dict[int, str] = field(default_factory=dict)
    """Numeric project id → `path_with_namespace` of a fork the app may read."""

    def __post_init__(self) -> None:
        LoopbackApi.__init__(self)

    def protect(self, project: str, branch: str = "main", *, reset_on_push: bool) -> None:
        """Protect `branch` of `project` (maintainers push and merge) and set the project's
        "Remove all approvals when commits are added to the source branch"
        (`reset_approvals_on_push` of `GET /projects/:id/approvals`)."""
        levels = [{"access_level": 40, "access_level_description": "Maintainers"}]
        self.protected[(project, branch)] = {
            "id": 1, "name": branch, "push_access_levels": levels,
            "merge_access_levels": levels, "allow_force_push": False,
            "code_owner_approval_required": False,
        }  # fmt: skip
        self.approvals[project] = {
            **self.approvals.get(project, {}),
            "reset_approvals_on_push": reset_on_push,
        }

    def push(self, iid: int, sha: str) -> None:
        """The merge request's source branch pushed (or force-pushed) to `sha`: as GitLab
        does, its approvals are removed when its project resets approvals on push."""
        mr = next(m for m in self.merge_requests if m.iid == iid)
        mr.sha = sha
        if self.approvals.get(mr.project, {}).get("reset_approvals_on_push"):
            mr.approved_by.clear()

    def who(self, authorization: str) -> str:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return ""
        if token == self.app_token:
            return "app"
        return self.user_tokens.get(token, "")

    def unauthorized(self) -> Answer:
        return Answer(401, {"message": "401 Unauthorized"})

    def fault_answer(self, fault: Fault) -> Answer:
        headers: dict[str, str] = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = fault.retry_after
        if fault.status == 429:
            headers.update({"RateLimit-Limit": "600", "RateLimit-Remaining": "0"})
            return Answer(429, fault.body if fault.body is not None else "Retry later\n", headers)
        message: Any = {
            401: "401 Unauthorized",
            403: "403 Forbidden",
            404: "404 Project Not Found",
            409: ["Conflict"],
            422: ["Unprocessable Entity"],
        }.get(fault.status, "500 Internal Server Error")
        return Answer(
            fault.status, fault.body if fault.body is not None else {"message": message}, headers
        )

    def handle(self, seen: Seen) -> Answer:
        if seen.raw_path == "/api/v4/user" and seen.method == "GET":
            if seen.who == "app":  # a project access token's bot user
                return Answer(200, _user_json("project_42_bot_0123456789abcdef", bot=True))
            return Answer(200, _user_json(seen.who))
        if not seen.raw_path.startswith("/api/v4/projects/"):
            return Answer(404, {"error": "404 Not Found"})
        segment, _, rest = seen.raw_path.removeprefix("/api/v4/projects/").partition("/")
        project = unquote(segment)  # one segment: the path URL-encoded, as GitLab wants it
        rest = "/" + rest if rest else ""
        if project.isdigit() and not rest and seen.method == "GET":
            fork = self.forks.get(int(project))
            if fork is None:
                return Answer(404, {"message": "404 Project Not Found"})
            return Answer(200, {"id": int(project), "path_with_namespace": fork})
        routes = (
            (_MR, "GET", self._one),
            (_MR_APPROVALS, "GET", self._mr_approvals),
            (_MRS, "GET", self._list),
            (_MRS, "POST", self._create),
            (_STATUS, "POST", self._status),
            (_PROTECTED, "GET", self._protected),
            (_APPROVALS, "GET", self._approvals),
            (_RULES, "GET", self._rules),
            (_ONE, "GET", self._project),
        )
        for pattern, method, handler in routes:
            found = pattern.fullmatch(rest)
            if found and seen.method == method:
                if not self.git.exists(project):
                    return Answer(404, {"message": "404 Project Not Found"})
                return handler(seen, project, *(unquote(g) for g in found.groups()))
        return Answer(404, {"error": "404 Not Found"})

    def _list(self, seen: Seen, project: str) -> Answer:
        branch = seen.query.get("source_branch")
        state = seen.query.get("state", "all")
        return Answer(
            200,
            [
                self._mr_json(mr)
                for mr in self.merge_requests
                if mr.project == project
                and (branch is None or mr.source_branch == branch)
                and (state == "all" or mr.state == state)
            ],
        )

    def _create(self, seen: Seen, project: str) -> Answer:
        body = _validated(seen.body, MERGE_REQUEST_FIELDS)
        sha = self.git.head(project, body["source_branch"])
        if sha is None:
            return Answer(
                400, {"message": [f'Source branch "{body["source_branch"]}" does not exist']}
            )
        if self.git.head(project, body["target_branch"]) is None:
            return Answer(
                400, {"message": [f'Target branch "{body["target_branch"]}" does not exist']}
            )
        for mr in self.merge_requests:
            if (
                mr.project == project
                and mr.source_branch == body["source_branch"]
                and mr.state == "opened"
            ):
                return Answer(
                    409,
                    {
                        "message": [
                            "Another open merge request already exists for this source "
                            f"branch: !{mr.iid}"
                        ]
                    },
                )
        mr = MergeRequest(
            iid=len(self.merge_requests) + 1,
            project=project,
            title=body["title"],
            description=body.get("description", ""),
            source_branch=body["source_branch"],
            target_branch=body["target_branch"],
            opened_by=seen.who,
            sha=sha,
        )
        self.merge_requests.append(mr)
        return Answer(201, self._mr_json(mr))

    def _found(self, project: str, iid: str) -> MergeRequest:
        for mr in self.merge_requests:
            if mr.project == project and mr.iid == int(iid):
                return mr
        raise Invalid(Answer(404, {"message": "404 Not found"}))

    def _one(self, seen: Seen, project: str, iid: str) -> Answer:
        return Answer(200, self._mr_json(self._found(project, iid)))

    def _mr_approvals(self, seen: Seen, project: str, iid: str) -> Answer:
        mr = self._found(project, iid)
        return Answer(
            200,
            {
                "id": 5000 + mr.iid,
                "iid": mr.iid,
                "project_id": PROJECT_ID,
                "title": mr.title,
                "state": mr.state,
                "merge_status": "can_be_merged",
                "approved": bool(mr.approved_by),
                "approvals_required": 1,
                "approvals_left": 0 if mr.approved_by else 1,
                "approved_by": [{"user": _user_json(name)} for name in mr.approved_by],
            },
        )

    def _mr_json(self, mr: MergeRequest) -> dict[str, Any]:
        draft = mr.title.lower().startswith(("draft:", "[draft]", "(draft)"))
        return {
            "id": 5000 + mr.iid,
            "iid": mr.iid,
            "project_id": PROJECT_ID,
            "source_project_id": mr.source_project_id,
            "target_project_id": PROJECT_ID,
            "title": mr.title,
            "description": mr.description,
            "state": mr.state,
            "draft": draft,
            "work_in_progress": draft,
            "source_branch": mr.source_branch,
            "target_branch": mr.target_branch,
            "sha": mr.sha,
            "author": {"id": 7, "username": mr.opened_by, "name": mr.opened_by},
            "web_url": f"{self.url}/{mr.project}/-/merge_requests/{mr.iid}",
            "merge_status": "can_be_merged",
        }

    def _status(self, seen: Seen, project: str, sha: str) -> Answer:
        body = _validated(seen.body, STATUS_FIELDS)
        if body["state"] not in STATES:
            return Answer(400, {"error": "state does not have a valid value"})
        if not self.git.has_commit(project, sha):
            return Answer(404, {"message": "404 Commit Not Found"})
        name = body.get("name") or body.get("context") or "default"
        previous = [s for s in self.statuses if s.sha == sha and s.name == name]
        if previous and previous[-1].state == body["state"]:
            return Answer(
                400,
                {"message": f"Cannot transition status via :{body['state']} from :{body['state']}"},
            )
        status = CommitStatus(
            sha=sha,
            state=body["state"],
            name=name,
            description=body.get("description", ""),
            target_url=body.get("target_url", ""),
            set_by=seen.who,
        )
        self.statuses.append(status)
        return Answer(
            201,
            {
                "id": len(self.statuses),
                "sha": sha,
                "ref": body.get("ref"),
                "status": status.state,
                "name": status.name,
                "target_url": status.target_url or None,
                "description": status.description or None,
                "created_at": "2026-11-30T05:00:00.000Z",
                "started_at": None,
                "finished_at": None,
                "allow_failure": False,
                "coverage": None,
                "author": {"id": 8, "username": seen.who, "name": seen.who},
            },
        )

    def _protected(self, seen: Seen, project: str, name: str) -> Answer:
        rule = self.protected.get((project, name))
        if rule is None:
            return Answer(404, {"message": "404 Not found"})
        return Answer(200, rule)

    def _approvals(self, seen: Seen, project: str) -> Answer:
        default = {
            "approvals_before_merge": 0,
            "reset_approvals_on_push": False,
            "disable_overriding_approvers_per_merge_request": False,
            "merge_requests_author_approval": False,
            "merge_requests_disable_committers_approval": False,
            "require_password_to_approve": False,
        }
        return Answer(200, {**default, **self.approvals.get(project, {})})

    def _rules(self, seen: Seen, project: str) -> Answer:
        return Answer(200, self.approval_rules.get(project, []))

    def _project(self, seen: Seen, project: str) -> Answer:
        return Answer(
            200,
            {
                "id": 42,
                "path_with_namespace": project,
                "default_branch": "main",
                "web_url": f"{self.url}/{project}",
                "only_allow_merge_if_pipeline_succeeds": project in self.pipeline_must_succeed,
            },
        )


def _user_json(username: str, *, bot: bool = False) -> dict[str, Any]:
    return {
        "id": sum(map(ord, username)),
        "username": username,
        "name": username.title(),
        "state": "active",
        "bot": bot,
        "avatar_url": None,
        "web_url": f"https://gitlab.example/{username}",
    }


def _validated(body: Any, schema: dict[str, Any]) -> dict[str, Any]:
    problem = check_fields(body, required=schema["required"], optional=schema["optional"])
    if problem is None:
        return dict(body)
    kind, key = problem
    error = {
        "not-object": "the body is not a JSON object",
        "unknown": f"{key} does not have a valid value",
        "missing": f"{key} is missing",
        "type": f"{key} is invalid",
    }[kind]
    raise Invalid(Answer(400, {"error": error}))
