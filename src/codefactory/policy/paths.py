"""Touched paths as Cedar entities, and the kinds of change a path implies.

Cedar has no "for every path": each touched path becomes a `Path` entity under its
`Directory` chain and its `Repository`, and policy is asked once per path and per action the
path implies (`modify_dependencies`, `modify_ci`, `modify_infrastructure`).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from pathlib import PurePosixPath
from typing import Any

from codefactory.policy.port import EntityRef
from codefactory.projects.dependency_files import is_dependency_file

CI_DIRS = (".github", ".gitlab", ".circleci", ".buildkite", ".tekton", ".azure-pipelines")
CI_FILES = (
    ".gitlab-ci.yml", "Jenkinsfile", "azure-pipelines.yml", "bitbucket-pipelines.yml",
    ".travis.yml", ".pre-commit-config.yaml", "CODEOWNERS",
)  # fmt: skip
INFRA_DIRS = (
    "terraform", "k8s", "kubernetes", "helm", "charts", "deploy", "deployment", "ansible",
    "infra", "infrastructure",
)  # fmt: skip
INFRA_FILES = (
    "Dockerfile*", "Containerfile*", "*.dockerfile", "docker-compose*.yml",
    "docker-compose*.yaml", "compose.yaml", "compose.yml", "*.tf", "*.tfvars", "*.hcl",
    "kustomization.yaml", "Chart.yaml",
)  # fmt: skip


def _named(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def implied_actions(path: str) -> tuple[str, ...]:
    """The kinds of change touching `path` amounts to, beyond opening a pull request."""
    pure = PurePosixPath(path)
    folders = set(pure.parts[:-1])
    actions = []
    if is_dependency_file(path):
        actions.append("modify_dependencies")
    if folders & set(CI_DIRS) or _named(pure.name, CI_FILES):
        actions.append("modify_ci")
    if folders & set(INFRA_DIRS) or _named(pure.name, INFRA_FILES):
        actions.append("modify_infrastructure")
    return tuple(actions)


def path_ref(path: str) -> EntityRef:
    return EntityRef(type="Path", id=path)


def repository_entity(repository: str) -> dict[str, Any]:
    """The `Repository` entity of a canonical id (docs/repositories.md); its `name` attribute
    is the id again, for `like` patterns (`resource.name like "acme/*"`)."""
    uid = {"type": "Repository", "id": repository}
    return {"uid": uid, "attrs": {"name": repository}, "parents": []}


def path_entities(repository: str, paths: Iterable[str]) -> list[dict[str, Any]]:
    """`Path` entities (attribute `path`) under `Directory` chains under the `Repository`
    whose canonical id is `repository`."""
    repo = {"type": "Repository", "id": repository}
    entities: dict[tuple[str, str], dict[str, Any]] = {
        ("Repository", repository): repository_entity(repository)
    }
    for path in paths:
        parent = repo
        folders = PurePosixPath(path).parts[:-1]
        for depth in range(1, len(folders) + 1):
            folder = "/".join(folders[:depth])
            uid = {"type": "Directory", "id": folder}
            entities.setdefault(
                ("Directory", folder), {"uid": uid, "attrs": {"path": folder}, "parents": [parent]}
            )
            parent = uid
        entities[("Path", path)] = {
            "uid": {"type": "Path", "id": path},
            "attrs": {"path": path, "name": PurePosixPath(path).name},
            "parents": [parent],
        }
    return list(entities.values())
