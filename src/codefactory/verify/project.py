"""The project a check judges, detected from the workspace's tree as the check phase sees it.

The checks need three facts of `codefactory.projects` detection: the Python the project
supports (linters' and parsers' target version), and the test command and test paths of its
repository config. Detection reads committed files only; nothing it reads runs.
"""

from __future__ import annotations

import copy
from typing import Self

from codefactory.projects.detect import detect_project
from codefactory.projects.files import WorkspaceFiles
from codefactory.projects.model import FileSource, Project
from codefactory.sandbox.layout import SH
from codefactory.sandbox.port import Phase, Workspace


class ProjectBound:
    """Base of a check that reads the project: the gate binds the project it detected once
    (`for_project`, the `ProjectCheck` port); unbound, the check detects it itself."""

    _project: Project | None = None

    def for_project(self, project: Project) -> Self:
        """This check judging a workspace whose project is `project`. A shallow copy: what
        the check remembers across runs (a test map that failed to record) stays shared."""
        bound = copy.copy(self)
        bound._project = project
        return bound

    def project_of(self, workspace: Workspace) -> Project:
        """The bound project, else the one detected in `workspace`."""
        return self._project if self._project is not None else project_of(workspace)


class CheckPhaseFiles:
    """Named files of the workspace as a check sees them, read without listing the tree (a
    `FileSource` whose `paths()` is empty: only for readers that ask for named files)."""

    def __init__(self, workspace: Workspace) -> None:
        self._workspace = workspace

    def paths(self) -> list[str]:
        return []

    def read(self, path: str) -> bytes | None:
        return self._workspace.read_file(path, phase=Phase.CHECK)

    def is_link(self, path: str) -> bool:
        """Whether `path` itself is a symbolic link, as the check phase sees it."""
        probe = [SH, "-c", 'test -L "$1"', "sh", path]
        return self._workspace.exec(probe, phase=Phase.CHECK, timeout_s=30).exit_code == 0


def project_of(workspace: Workspace) -> Project:
    """The project of the workspace's tree (one sandboxed `find` lists it)."""
    files: FileSource = WorkspaceFiles(workspace, Phase.CHECK)
    return detect_project(files)
