"""What the workspace under judgement is: its ecosystems and repository config, detected once
per gate run from the files the sandbox shows (after the change).

The projects package's own detector (`projects.detect.detect_project` over
`projects.files.WorkspaceFiles`) decides when it is there; until then a minimal one stands in:
a root `package.json` through `projects.javascript.detect_javascript`, and Python when any
Python file or Python dependency file is committed.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from codefactory.projects.javascript import detect_javascript
from codefactory.projects.model import Project, PythonProject, RepositoryConfig
from codefactory.sandbox.layout import system_tool
from codefactory.sandbox.port import Phase, Workspace

ProjectDetector = Callable[[Workspace], Project]
"""Reads a workspace's project; raises when it cannot list or read the workspace."""

_PYTHON_FILES = re.compile(
    r"(^|/)([^/]+\.pyi?|pyproject\.toml|setup\.py|setup\.cfg|Pipfile(\.lock)?|tox\.ini"
    r"|requirements[\w.-]*\.txt)$"
)
_LIST = (
    "/usr/bin/find . -mindepth 1 \\( -name .git -o -name node_modules -o -name .codefactory \\) "
    "-prune -o \\( -type f -o -type l \\) -print"
)


class WorkspaceListing:
    """The files a workspace shows to the check phase (the `FileSource` port); one listing
    command, then reads through `Workspace.read_file`."""

    def __init__(self, workspace: Workspace, *, timeout_s: float = 60.0) -> None:
        self.workspace = workspace
        result = workspace.exec(
            [system_tool("sh"), "-c", _LIST], phase=Phase.CHECK, timeout_s=timeout_s
        )
        if not result.ok:
            reason = result.stderr.strip() or result.limit_hit or f"exit {result.exit_code}"
            raise RuntimeError(f"the workspace's files could not be listed: {reason[-500:]}")
        self._paths = sorted(
            line[2:] for line in result.stdout.splitlines() if line.startswith("./")
        )

    def paths(self) -> list[str]:
        return list(self._paths)

    def read(self, path: str) -> bytes | None:
        return self.workspace.read_file(path, phase=Phase.CHECK)


def detect_workspace(workspace: Workspace) -> Project:
    """The project of `workspace` (see the module docstring); raises RuntimeError when the
    workspace's files cannot be listed."""
    shared = _shared_detector()
    if shared is not None:
        return shared(workspace)
    files = WorkspaceListing(workspace)
    javascript, problems = detect_javascript(files, RepositoryConfig())
    python = None
    if any(_PYTHON_FILES.search(p) for p in files.paths()):
        python = PythonProject(layout="none")
    return Project(python=python, javascript=javascript, problems=tuple(problems))


def _shared_detector() -> ProjectDetector | None:
    """The projects package's detector over `WorkspaceFiles(workspace)`, when it exists."""
    try:
        from codefactory.projects.detect import detect_project
        from codefactory.projects.files import WorkspaceFiles  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None

    def detect(workspace: Workspace) -> Project:
        return detect_project(WorkspaceFiles(workspace))

    return detect
