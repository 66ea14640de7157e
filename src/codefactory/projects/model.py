"""What a repository is, as the setup phase and the checks need to know it: its ecosystems,
how each is installed, how its tests run, which Python it asks for.

Detection (`detect.py`) reads only committed files through a `FileSource`; nothing here runs
anything. The setup phase (`sandbox/setup.py`) executes the plan; the checks read it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol


class Ecosystem(enum.StrEnum):
    """A package ecosystem, named as OSV names them where it can (`PyPI`, `npm`)."""

    PYTHON = "PyPI"
    JAVASCRIPT = "npm"


class FileSource(Protocol):
    """The committed files of one tree: a workspace (`WorkspaceFiles`) or a git tree
    (`GitTreeFiles`). Paths are POSIX, relative to the repository root."""

    def paths(self) -> list[str]:
        """Every regular file and symbolic link of the tree, sorted."""
        ...

    def read(self, path: str) -> bytes | None:
        """The bytes of `path` (through a symbolic link that stays inside the tree);
        None when absent, a directory, or a link out of the tree."""
        ...

    def is_link(self, path: str) -> bool:
        """Whether `path` itself is a symbolic link of the tree (git mode 120000). Links on the
        way are not followed: a file under a linked folder is not a link itself."""
        ...


@dataclass(frozen=True, kw_only=True)
class SetupStep:
    """One command of the networked setup phase, run in the repository's root.

    `argv` names programs by absolute sandbox path; `why` says which file asked for it
    (shown in the setup log and the evidence).
    """

    argv: tuple[str, ...]
    why: str
    shell: bool = False
    """True for a repository config's own `setup` line (run by `sh -c`, still sandboxed)."""


@dataclass(frozen=True, kw_only=True)
class RepositoryConfig:
    """`.codefactory/config.toml` (docs/repository-config.md). It says how to set the
    project up and test it; it never widens authority (hosts, paths, rounds come from policy)."""

    setup: tuple[str, ...] = ()
    """Shell lines run in the setup phase, after (or, with `replace_setup`, instead of) the
    detected steps."""
    replace_setup: bool = False
    test_command: tuple[str, ...] | None = None
    """argv of the test command (pytest by default for Python; `npm test` for JavaScript)."""
    test_paths: tuple[str, ...] = ()
    skip_checks: frozenset[str] = frozenset()
    add_checks: tuple[CustomCheck, ...] = ()
    python: str | None = None
    """A version (`3.12`) or PEP 440 specifier (`>=3.12`)."""
    source: str = ""
    """The file it was read from; empty when the repository has none."""


@dataclass(frozen=True, kw_only=True)
class CustomCheck:
    """A check a repository adds: a named command, offline, judged by its exit status."""

    name: str
    command: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class PythonProject:
    """The Python side of a repository."""

    layout: str
    """How it is installed: `uv`, `poetry`, `pep621`, `requirements`, `setuptools`,
    `pipfile`, `tox`, `nox`, `config` (the repository config's own steps), `none`."""
    python: str | None = None
    """The Python it asks for: a version or PEP 440 specifier; None when it says nothing."""
    python_source: str = ""
    """Which file said so (`.python-version`, `pyproject.toml requires-python`, ...)."""
    setup: tuple[SetupStep, ...] = ()
    inputs: tuple[str, ...] = ()
    """The files whose bytes decide what setup installs (an image is keyed by them)."""
    target_version: str | None = None
    """The lowest `3.X` the project supports, for linters' target version (`py312`)."""


@dataclass(frozen=True, kw_only=True)
class JavaScriptProject:
    """The JavaScript/TypeScript side of a repository."""

    manager: str
    """`npm`, `pnpm` or `yarn`."""
    lock_file: str
    setup: tuple[SetupStep, ...] = ()
    inputs: tuple[str, ...] = ()
    test_script: str | None = None
    """`scripts.test` of package.json, None when it has none."""
    eslint_config: str | None = None
    """The ESLint configuration file the repository commits, None when it has none."""


@dataclass(frozen=True, kw_only=True)
class Project:
    """Everything detection found; `problems` are what it could not read (named findings)."""

    python: PythonProject | None = None
    javascript: JavaScriptProject | None = None
    config: RepositoryConfig = field(default_factory=RepositoryConfig)
    problems: tuple[str, ...] = ()

    @property
    def ecosystems(self) -> frozenset[Ecosystem]:
        found = set()
        if self.python is not None:
            found.add(Ecosystem.PYTHON)
        if self.javascript is not None:
            found.add(Ecosystem.JAVASCRIPT)
        return frozenset(found)

    @property
    def inputs(self) -> tuple[str, ...]:
        """Every file whose bytes decide the installed environment, sorted."""
        python = self.python.inputs if self.python else ()
        javascript = self.javascript.inputs if self.javascript else ()
        config = (self.config.source,) if self.config.source else ()
        return tuple(sorted({*python, *javascript, *config}))
