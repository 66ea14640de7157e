"""The project a check judges, read from the workspace's committed files (no command runs).

The checks need three facts: the Python the project supports (linters' and parsers' target
version), the test command and the test paths of its repository config. Detection belongs
to `codefactory.projects` (`detect_project` over `WorkspaceFiles`); until that detector reads
Python projects, `minimal_project` reads the two files that name a Python version
(`.python-version`, PEP 621 `requires-python`), so the checks already follow the project.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import replace

from packaging.specifiers import InvalidSpecifier, SpecifierSet

from codefactory.projects.detect import detect_project
from codefactory.projects.model import FileSource, Project, PythonProject
from codefactory.sandbox.port import Phase, Workspace

MINORS = range(0, 40)
"""Python 3 minor versions a target version is looked for among."""
_VERSION = re.compile(r"^\s*(?:python|cpython|py)?-?(3)\.(\d+)(?:\.\d+)?\S*\s*$", re.I)


class CheckPhaseFiles:
    """The workspace's files as a check sees them; `read` only (a `FileSource` subset).

    `paths()` is empty: listing the tree would cost a sandboxed command, and the readers
    used here ask for named files only.
    """

    def __init__(self, workspace: Workspace) -> None:
        self._workspace = workspace

    def paths(self) -> list[str]:
        return []

    def read(self, path: str) -> bytes | None:
        return self._workspace.read_file(path, phase=Phase.CHECK)


def project_of(workspace: Workspace) -> Project:
    """The project of the workspace's tree, by `codefactory.projects` detection; its Python
    side completed by `minimal_project` where detection does not say which Python."""
    files = _files(workspace)
    project = detect_project(files)
    python = project.python
    if python is None or python.target_version is None:
        found = minimal_project(files).python
        if found is not None and python is None:
            project = replace(project, python=found)
        elif found is not None and python is not None:
            project = replace(
                project,
                python=replace(
                    python,
                    python=python.python or found.python,
                    python_source=python.python_source or found.python_source,
                    target_version=found.target_version,
                ),
            )
    return project


def minimal_project(files: FileSource) -> Project:
    """A Python project whose only facts are the Python it asks for: `[project]
    requires-python` (PEP 621, a PEP 440 specifier) gives the lowest version it supports,
    else `.python-version` (what uv and pyenv run). No Python side when neither names one;
    unreadable files name nothing."""
    requires = _requires_python(files.read("pyproject.toml"))
    if requires:
        return _python(requires, "pyproject.toml requires-python", target_version(requires))
    pinned = _text(files.read(".python-version"))
    line = next((raw.strip() for raw in pinned.splitlines() if raw.strip()), "")
    match = _VERSION.match(line)
    if match:
        return _python(f"3.{int(match.group(2))}", ".python-version", target_version(line))
    return Project()


def target_version(specifier: str) -> str | None:
    """The lowest Python 3 minor version a version or PEP 440 specifier admits, as linters
    name it (`>=3.12` → `py312`, `3.11` → `py311`); None when it admits none or is invalid."""
    match = _VERSION.match(specifier)
    if match:
        return f"py3{int(match.group(2))}"
    try:
        allowed = SpecifierSet(specifier)
    except InvalidSpecifier:
        return None
    for minor in MINORS:
        if any(allowed.contains(f"3.{minor}.{patch}", prereleases=True) for patch in (0, 99)):
            return f"py3{minor}"
    return None


def version_of(target: str | None) -> tuple[int, int] | None:
    """`py312` → (3, 12); None for anything else."""
    match = re.fullmatch(r"py3(\d+)", target or "")
    return (3, int(match.group(1))) if match else None


def _python(python: str, source: str, target: str | None) -> Project:
    return Project(
        python=PythonProject(
            layout="none", python=python, python_source=source, target_version=target
        )
    )


def _requires_python(raw: bytes | None) -> str | None:
    text = _text(raw)
    if not text:
        return None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return None
    project = document.get("project")
    requires = project.get("requires-python") if isinstance(project, dict) else None
    return requires.strip() if isinstance(requires, str) and requires.strip() else None


def _text(raw: bytes | None) -> str:
    if raw is None:
        return ""
    return raw.decode("utf-8-sig", "replace")


def _files(workspace: Workspace) -> FileSource:
    try:
        from codefactory.projects.files import (  # type: ignore[import-not-found,unused-ignore]
            WorkspaceFiles,
        )
    except ImportError:
        return CheckPhaseFiles(workspace)
    found: FileSource = WorkspaceFiles(workspace, Phase.CHECK)
    return found
