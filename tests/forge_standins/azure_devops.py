"""A stand-in for Azure DevOps Services (REST API 7.1) serving one organisation at
`<base_url>/<organization>`: the endpoints `AzureDevOpsHost` calls, answered with the shapes
learn.microsoft.com/rest/api/azure/devops documents (`GitPullRequest`, `GitStatus`,
`GitRepository`, `PolicyConfiguration`, `AccessControlList`, lists as `{"count", "value"}`).

It checks every request as the service does: `api-version=7.1` present, the credential
(`Basic base64(":" + pat)` or `Bearer <Entra JWT>`), the path, the query keys, and each body's
required fields, types and allowed fields; a refusal is the service's error document
(`{"$id": "1", "innerException": null, "message", "typeName", "typeKey", "errorCode": 0,
"eventId": 3000}`). A second active pull request for the same source and target is refused
with `409` TF401179, as the service does.

Also served: Pull Requests - Get Pull Request By Id (`.../pullrequests/{id}`, with
`lastMergeSourceCommit` from `heads` and `forkSource` when set), Pull Request Reviewers - List
(`.../pullrequests/{id}/reviewers`, the votes `vote()` recorded) and the organisation's
`_apis/connectionData` (`authenticatedUser.properties.Account.$value`: the token's
`uniqueName`; it is a preview resource: `api-version` absent or `7.1-preview.1`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.context_standins.vendors import Answer, RecordedRequest
from tests.forge_standins.recording import ForgeStandin, running

ORGANIZATION = "acme-bank"
PROJECT = "Payments"
REPOSITORY = "payments-api"
SPONSOR_PAT = "sponsorpat4azuredevops0000000000000000000000000000"
APP_PAT = "factoryapppat4azuredevops00000000000000000000000000"
SPONSOR = "sponsor@acme-bank.example"
FACTORY = "codefactory-app@acme-bank.example"

MINIMUM_REVIEWERS = "fa4e907d-c16b-4a4c-9dfa-4906e5d171dd"
BUILD = "0609b952-1397-4640-95ec-e00a01b2c241"
STATUS = "cbdc66da-9728-4af8-aada-9a5a32e4a226"
GIT_REPOSITORIES_NAMESPACE = "2e9eb7ed-3c0a-47d4-87c1-0ffdd275fd87"
PROJECT_ADMINISTRATORS = (
    "Microsoft.TeamFoundation.Identity;S-1-9-1551374245-1204400969-2402986413-2179408616-0-0-0-0-1"
)

_PULL_FIELDS = {
    "sourceRefName",
    "targetRefName",
    "title",
    "description",
    "isDraft",
    "reviewers",
    "workItemRefs",
    "labels",
    "completionOptions",
    "mergeOptions",
}
_STATUS_FIELDS = {"state", "description", "targetUrl", "context", "iterationId"}
_STATUS_STATES = {"notSet", "pending", "succeeded", "failed", "error", "notApplicable"}
_SEARCH_KEYS = {
    "searchCriteria.sourceRefName",
    "searchCriteria.targetRefName",
    "searchCriteria.status",
    "$top",
    "$skip",
}
_TYPE_KEYS = {
    400: "InvalidArgumentValueException",
    401: "UnauthorizedRequestException",
    403: "AccessCheckException",
    404: "NotFoundException",
    409: "GitPullRequestExistsException",
    422: "InvalidArgumentValueException",
    429: "RequestBlockedException",
}


def error(message: str, type_key: str) -> dict[str, Any]:
    """Azure DevOps' error document."""
    return {
        "$id": "1",
        "innerException": None,
        "message": message,
        "typeName": f"Microsoft.TeamFoundation.{type_key}, Microsoft.TeamFoundation.Framework",
        "typeKey": type_key,
        "errorCode": 0,
        "eventId": 3000,
    }


def _invalid(message: str) -> Answer:
    return 400, error(message, "InvalidArgumentValueException")


def policy(
    type_id: str, settings: dict[str, Any], *, blocking: bool = True, enabled: bool = True
) -> dict[str, Any]:
    """A `PolicyConfiguration` as `GET _apis/policy/configurations` lists it."""
    names = {MINIMUM_REVIEWERS: "Minimum number of reviewers", BUILD: "Build", STATUS: "Status"}
    return {
        "isEnabled": enabled,
        "isBlocking": blocking,
        "isDeleted": False,
        "settings": settings,
        "revision": 1,
        "id": 0,
        "type": {"id": type_id, "url": "", "displayName": names.get(type_id, "")},
    }


def acl(token: str, descriptor: str, *, allow: int = 0, deny: int = 0) -> dict[str, Any]:
    """An `AccessControlList` as `GET _apis/accesscontrollists/{namespace}` lists it."""
    return {
        "inheritPermissions": True,
        "token": token,
        "acesDictionary": {descriptor: {"descriptor": descriptor, "allow": allow, "deny": deny}},
    }


def scope(repository_id: str | None, ref: str | None, kind: str = "Exact") -> dict[str, Any]:
    return {"repositoryId": repository_id, "refName": ref, "matchKind": kind}


@dataclass
class AzureDevOpsStandin(ForgeStandin):
    organization: str = ORGANIZATION
    repositories: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    pulls: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    policies: list[dict[str, Any]] = field(default_factory=list)
    acls: list[dict[str, Any]] = field(default_factory=list)
    security_api: bool = True
    heads: dict[str, str] = field(default_factory=dict)
    """`refs/heads/<branch>` → the commit it points at (else `git_head`'s answer, else a
    digest of the name): the new request's `lastMergeSourceCommit`."""
    git_head: Callable[[str], str | None] | None = None
    """The commit the git host holds at a `refs/heads/<branch>` (None: no such branch), as
    the service reads the pushed branch: an end-to-end test passes the git stand-in's."""
    """False: `_apis/accesscontrollists` answers 404, as a server without it would."""
    """Access control lists of the Git repositories namespace (`acl()` builds one)."""

    def __post_init__(self) -> None:
        self.tokens = self.tokens or {SPONSOR_PAT: SPONSOR, APP_PAT: FACTORY}
        self.add_repository(PROJECT, REPOSITORY)

    @property
    def org_url(self) -> str:
        return f"{self.base_url}/{self.organization}"

    def add_repository(self, project: str, name: str) -> dict[str, Any]:
        repository = {
            "id": str(uuid.uuid4()),
            "name": name,
            "project": {"id": str(uuid.uuid4()), "name": project, "state": "wellFormed"},
            "defaultBranch": "refs/heads/main",
            "isDisabled": False,
        }
        self.repositories[(project, name)] = repository
        return repository

    def repository_id(self, project: str = PROJECT, name: str = REPOSITORY) -> str:
        return str(self.repositories[(project, name)]["id"])

    def identity(self, headers: dict[str, str]) -> str | None:
        value = headers.get("authorization", "")
        scheme, _, credential = value.partition(" ")
        if scheme.lower() == "basic":
            try:
                _, _, credential = base64.b64decode(credential).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None
        elif scheme.lower() != "bearer":
            return None
        return self.tokens.get(credential)

    def vendor_error(self, status: int, message: str, exception: str = "") -> Any:
        return error(message, exception or _TYPE_KEYS.get(status, "VssServiceException"))

    def unauthorized(self) -> Answer:
        return 401, error(
            "TF400813: The user '' is not authorized to access this resource.",
            "UnauthorizedRequestException",
        )

    def vote(self, pull_id: int, unique_name: str, value: int = 10, **extra: Any) -> None:
        """`unique_name` votes `value` on request `pull_id` (an `IdentityRefWithVote`)."""
        pull = next(p for p in self.pulls if p["pullRequestId"] == pull_id)
        pull["reviewers"].append(
            {
                "reviewerUrl": "",
                "vote": value,
                "hasDeclined": False,
                "isFlagged": False,
                "displayName": unique_name.split("@")[0].title(),
                "id": str(uuid.uuid5(uuid.NAMESPACE_DNS, unique_name)),
                "uniqueName": unique_name,
                "isContainer": False,
                **extra,
            }
        )

    def route(self, request: RecordedRequest) -> Answer:
        if request.path == f"/{self.organization}/_apis/connectionData":
            return self._connection_data(request)
        version = request.query.get("api-version", [""])[0]
        if not version:
            return 400, error(
                f'No api-version was supplied for the "{request.method}" request.',
                "VssVersionNotSpecifiedException",
            )
        if version != "7.1":
            return 400, error(
                f"The requested REST API version of {version} is out of range for this server.",
                "VssVersionOutOfRangeException",
            )
        prefix = f"/{self.organization}/"
        if not request.path.startswith(prefix):
            return 404, error("The organization was not found.", "NotFoundException")
        rest = request.path[len(prefix) :]
        match = re.fullmatch(r"_apis/accesscontrollists/([0-9a-f-]{36})", rest)
        if match and request.method == "GET" and self.security_api:
            return self._acls(match[1], request)
        match = re.fullmatch(r"([^/]+)/_apis/policy/configurations", rest)
        if match and request.method == "GET":
            return self._policies(match[1], request)
        match = re.fullmatch(r"([^/]+)/_apis/git/repositories/([^/]+)(/.*)?", rest)
        if match is None:
            return 404, error(f"API resource {request.path} was not found.", "NotFoundException")
        repository = self.repositories.get((match[1], match[2]))
        if repository is None:
            return 404, error(
                f"TF401019: The Git repository with name or identifier {match[2]} does not "
                "exist or you do not have permissions for the operation you are attempting.",
                "GitRepositoryNotFoundException",
            )
        tail = match[3] or ""
        if tail == "" and request.method == "GET":
            return 200, repository
        if tail == "/pullrequests" and request.method == "GET":
            return self._search(repository, request)
        if tail == "/pullrequests" and request.method == "POST":
            return self._create(repository, request)
        one = re.fullmatch(r"/pullrequests/([0-9]+)(/reviewers)?", tail)
        if one and request.method == "GET":
            return self._one(repository, int(one[1]), bool(one[2]), request)
        status = re.fullmatch(r"/commits/([0-9a-f]{40})/statuses", tail)
        if status and request.method == "POST":
            return self._status(repository, status[1], request)
        return 404, error(f"API resource {request.path} was not found.", "NotFoundException")

    def _connection_data(self, request: RecordedRequest) -> Answer:
        version = request.query.get("api-version", [""])[0]
        if version not in ("", "7.1-preview.1", "7.1-preview"):
            return 400, error(
                f"The requested REST API version of {version} is out of range for this server.",
                "VssVersionOutOfRangeException",
            )
        account = self.identity(request.headers) or ""
        self.did("read connection data", request)
        user = {
            "id": str(uuid.uuid5(uuid.NAMESPACE_DNS, account)),
            "descriptor": f"Microsoft.IdentityModel.Claims.ClaimsIdentity;{account}",
            "subjectDescriptor": "aad.ZmFrZQ",
            "providerDisplayName": account.split("@")[0].title(),
            "isActive": True,
            "properties": {"Account": {"$type": "System.String", "$value": account}},
            "resourceVersion": 2,
            "metaTypeId": 0,
        }
        return 200, {
            "authenticatedUser": user,
            "authorizedUser": user,
            "instanceId": str(uuid.uuid5(uuid.NAMESPACE_DNS, self.organization)),
            "deploymentId": str(uuid.uuid5(uuid.NAMESPACE_URL, self.organization)),
            "deploymentType": "hosted",
            "locationServiceData": {"serviceOwner": "00025394-6065-48ca-87d9-7f5672854ef7"},
        }

    def _one(
        self, repository: dict[str, Any], number: int, reviewers: bool, request: RecordedRequest
    ) -> Answer:
        unknown = set(request.query) - {"api-version", "includeCommits", "includeWorkItemRefs"}
        if unknown:
            return _invalid(f"Unknown query parameters: {sorted(unknown)}")
        pull = next(
            (
                p
                for p in self.pulls
                if p["pullRequestId"] == number and p["repository"]["id"] == repository["id"]
            ),
            None,
        )
        if pull is None:
            return 404, error(
                f"TF401180: The requested pull request was not found: {number}.",
                "GitPullRequestNotFoundException",
            )
        self.did("read reviewers" if reviewers else "read request", request)
        if reviewers:
            return 200, {"count": len(pull["reviewers"]), "value": pull["reviewers"]}
        return 200, pull

    def _policies(self, project: str, request: RecordedRequest) -> Answer:
        unknown = set(request.query) - {"api-version", "scope", "policyType", "$top"}
        if unknown:
            return _invalid(f"Unknown query parameters: {sorted(unknown)}")
        if project not in {p for p, _ in self.repositories}:
            return 404, error(
                f"TF200016: The project {project} does not exist.",
                "ProjectDoesNotExistWithNameException",
            )
        self.did("read policies", request)
        return 200, {"count": len(self.policies), "value": self.policies}

    def _acls(self, namespace: str, request: RecordedRequest) -> Answer:
        unknown = set(request.query) - {
            "api-version",
            "token",
            "descriptors",
            "includeExtendedInfo",
            "recurse",
        }
        if unknown:
            return _invalid(f"Unknown query parameters: {sorted(unknown)}")
        if namespace != GIT_REPOSITORIES_NAMESPACE:
            return 404, error(f"Security namespace {namespace} not found.", "NotFoundException")
        token = request.query.get("token", [""])[0]
        recurse = request.query.get("recurse", ["false"])[0] == "true"
        self.did("read permissions", request)
        found = [
            acl
            for acl in self.acls
            if acl["token"] == token or (recurse and acl["token"].startswith(token + "/"))
        ]
        return 200, {"count": len(found), "value": found}

    def _search(self, repository: dict[str, Any], request: RecordedRequest) -> Answer:
        unknown = set(request.query) - _SEARCH_KEYS - {"api-version"}
        if unknown:
            return _invalid(f"Unknown query parameters: {sorted(unknown)}")
        self.did("find request", request)
        if self.search_is_stale():
            return 200, {"count": 0, "value": []}
        criteria = {
            "sourceRefName": request.query.get("searchCriteria.sourceRefName", [None])[0],
            "targetRefName": request.query.get("searchCriteria.targetRefName", [None])[0],
            "status": request.query.get("searchCriteria.status", [None])[0],
        }
        found = [
            pull
            for pull in self.pulls
            if pull["repository"]["id"] == repository["id"]
            and all(value is None or pull[key] == value for key, value in criteria.items())
        ]
        return 200, {"count": len(found), "value": found}

    def _create(self, repository: dict[str, Any], request: RecordedRequest) -> Answer:
        body = request.body
        if not isinstance(body, dict):
            return _invalid("The request body must be a GitPullRequest object.")
        unknown = set(body) - _PULL_FIELDS
        if unknown:
            return _invalid(f"Unknown GitPullRequest properties: {sorted(unknown)}")
        for name in ("sourceRefName", "targetRefName", "title"):
            value = body.get(name)
            if not isinstance(value, str) or not value:
                return _invalid(f"Value cannot be null. Parameter name: {name}")
        for name in ("sourceRefName", "targetRefName"):
            if not body[name].startswith("refs/heads/"):
                return _invalid(f"{name} must be a full ref name (refs/heads/...).")
        description = body.get("description", "")
        if not isinstance(description, str) or len(description) > 4000:
            return _invalid("The pull request description may hold at most 4000 characters.")
        if "isDraft" in body and not isinstance(body["isDraft"], bool):
            return _invalid("isDraft must be a boolean.")
        for pull in self.pulls:
            if (
                pull["repository"]["id"] == repository["id"]
                and pull["status"] == "active"
                and pull["sourceRefName"] == body["sourceRefName"]
                and pull["targetRefName"] == body["targetRefName"]
            ):
                return 409, error(
                    "TF401179: An active pull request for the source and target branch "
                    "already exists.",
                    "GitPullRequestExistsException",
                )
        creator = self.identity(request.headers) or ""
        pull = {
            "repository": {
                "id": repository["id"],
                "name": repository["name"],
                "project": repository["project"],
            },
            "pullRequestId": len(self.pulls) + 1,
            "codeReviewId": len(self.pulls) + 1,
            "status": "active",
            "createdBy": {
                "displayName": creator.split("@")[0],
                "uniqueName": creator,
                "id": str(uuid.uuid5(uuid.NAMESPACE_DNS, creator)),
            },
            "creationDate": "2026-11-30T06:00:00.0000000Z",
            "title": body["title"],
            "description": description,
            "sourceRefName": body["sourceRefName"],
            "targetRefName": body["targetRefName"],
            "lastMergeSourceCommit": {"commitId": self._head(body["sourceRefName"]), "url": ""},
            "mergeStatus": "queued",
            "isDraft": bool(body.get("isDraft", False)),
            "reviewers": [],
            "supportsIterations": True,
        }
        self.pulls.append(pull)
        self.did("open request", request)
        return 201, pull

    def _head(self, ref: str) -> str:
        if ref in self.heads:
            return self.heads[ref]
        held = self.git_head(ref) if self.git_head is not None else None
        return held or hashlib.sha1(ref.encode()).hexdigest()

    def _status(self, repository: dict[str, Any], commit: str, request: RecordedRequest) -> Answer:
        body = request.body
        if not isinstance(body, dict):
            return _invalid("The request body must be a GitStatus object.")
        unknown = set(body) - _STATUS_FIELDS
        if unknown:
            return _invalid(f"Unknown GitStatus properties: {sorted(unknown)}")
        if body.get("state") not in _STATUS_STATES:
            return _invalid(f"state must be one of {sorted(_STATUS_STATES)}.")
        context = body.get("context")
        if not isinstance(context, dict) or not isinstance(context.get("name"), str):
            return _invalid("Value cannot be null. Parameter name: context.name")
        if set(context) - {"name", "genre"}:
            return _invalid("Unknown GitStatusContext properties.")
        status = {
            **body,
            "id": len(self.statuses) + 1,
            "commitId": commit,
            "creationDate": "2026-11-30T06:00:00Z",
            "createdBy": {"uniqueName": self.identity(request.headers)},
        }
        self.statuses.append(status)
        self.did("set status", request)
        return 201, status


@pytest.fixture
def azure_devops_standin() -> Iterator[AzureDevOpsStandin]:
    yield from running(AzureDevOpsStandin())
