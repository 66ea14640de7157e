"""Every dependency file of a repository read, for SCA and the dependency-bump recipe.

Which files: every requirements or constraints file (`requirements*.txt`, `constraints*.txt`,
`*.in`, the files of a `requirements*/` folder) and every `pyproject.toml` at any depth, every
lock file of either ecosystem (`uv.lock`, `poetry.lock`, `Pipfile.lock`, `pylock*.toml`,
`package-lock.json`, `npm-shrinkwrap.json`, `pnpm-lock.yaml`, `yarn.lock`) at any depth, and
whatever `-r`/`-c` includes name. Also every input the setup phase installs from
(`projects.detect.setup_plan`): `setup.cfg` and `setup.py` (setuptools' `install_requires`
and `extras_require`, `setuptools.py`), `tox.ini` `deps` and `noxfile.py` installs
(`testenvs.py`), at any depth, and the root repository config's `[setup] commands`
(`setup_commands.py`); their `-r`/`-c`/`file:` includes are followed like any other, so a
file read already is read once. Installed trees (`node_modules`, `.venv`, `.git`,
`site-packages`, `.tox`, `.nox`) are never read.

How: as pip, uv and npm read them (`requirements.py`, `pyproject.py`, `locks.py`,
`npm_locks.py`). A symbolic link is read through while it stays inside the repository, and
the pins it yields name the real file (a bump edits the target). An include is resolved
relative to the including file as pip opened it; an include that climbs out of the
repository, names a URL, is missing or closes a cycle is unreadable. Whatever cannot be
fully understood is an `Unreadable` spot, never a silent skip.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from packaging.utils import canonicalize_name

from codefactory.advisories.declared import Declared
from codefactory.advisories.errors import LockFileInvalid, PinFilesUnlisted
from codefactory.advisories.locks import find_locked, is_lock_file
from codefactory.advisories.model import NPM, PYPI, Located, Pin, Unpinned, Unreadable
from codefactory.advisories.npm_locks import is_npm_lock, read_npm_lock
from codefactory.advisories.pins import PYPROJECT, is_pin_file
from codefactory.advisories.pyproject import parse_pyproject
from codefactory.advisories.requirements import (
    Decoded,
    Undecodable,
    decode,
    parse_requirements,
)
from codefactory.advisories.setup_commands import is_repository_config, parse_setup_commands
from codefactory.advisories.setuptools import parse_setup_cfg, parse_setup_py
from codefactory.advisories.testenvs import parse_noxfile, parse_tox_ini
from codefactory.projects.files import resolve_in_tree
from codefactory.sandbox.layout import system_tool
from codefactory.sandbox.port import Phase, Workspace

PRUNED = ("node_modules", ".venv", ".git", "site-packages", ".tox", ".nox")
"""Folders never read at any depth: installed packages and virtual environments."""
SETUP_INPUTS: Mapping[str, Callable[[str, str], Declared]] = {
    "setup.cfg": parse_setup_cfg,
    "setup.py": parse_setup_py,
    "tox.ini": parse_tox_ini,
    "noxfile.py": parse_noxfile,
}
"""Files the setup phase installs from, by name (at any depth), and their readers."""


class DependencyFiles(Protocol):
    """A repository's tree as the reader sees it (POSIX paths relative to the root)."""

    def listing(self) -> tuple[set[str], dict[str, str]]:
        """(regular files, symbolic link → its target as stored), outside `PRUNED` folders."""
        ...

    def read(self, real_path: str) -> bytes | None:
        """The bytes of a regular file of the listing; None when it cannot be read."""
        ...


class WorkspaceDependencyFiles:
    """A workspace's tree as `phase` shows it: one `find` lists it, reads go through
    `workspace.read_file`."""

    def __init__(self, workspace: Workspace, *, phase: Phase) -> None:
        self.workspace = workspace
        self.phase = phase

    def listing(self) -> tuple[set[str], dict[str, str]]:
        pruned = [arg for name in PRUNED for arg in ("-name", name, "-o")][:-1]
        kept = ["(", "-type", "f", "-o", "-type", "l", ")", "-printf", r"%y\0%P\0%l\0"]
        command = [
            *(system_tool("find"), ".", "-mindepth", "1", "-type", "d"),
            *("(", *pruned, ")", "-prune", "-o", *kept),
        ]
        result = self.workspace.exec(command, phase=self.phase, timeout_s=60)
        if not result.ok:
            raise PinFilesUnlisted(result.stderr.strip() or f"exit code {result.exit_code}")
        fields = result.stdout.split("\0")
        files: set[str] = set()
        links: dict[str, str] = {}
        for index in range(0, len(fields) - 2, 3):
            kind, path, target = fields[index : index + 3]
            if kind == "l":
                links[path] = target
            else:
                files.add(path)
        return files, links

    def read(self, real_path: str) -> bytes | None:
        return self.workspace.read_file(real_path, phase=self.phase)


class FolderDependencyFiles:
    """A folder on this machine read as a repository (the CLI's and the tests' reader)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def listing(self) -> tuple[set[str], dict[str, str]]:
        files: set[str] = set()
        links: dict[str, str] = {}
        for folder, dirs, names in os.walk(self.root):
            dirs[:] = [d for d in dirs if d not in PRUNED]
            for name in [*names, *dirs]:
                path = Path(folder, name)
                relative = path.relative_to(self.root).as_posix()
                if path.is_symlink():
                    links[relative] = os.readlink(path)
                elif name in names and path.is_file():
                    files.add(relative)
        return files, links

    def read(self, real_path: str) -> bytes | None:
        try:
            return (self.root / real_path).read_bytes()
        except OSError:
            return None


@dataclass(frozen=True, kw_only=True)
class PinFile:
    """A requirements file or pyproject.toml as read: its located pins and how to write it
    back in its own encoding."""

    path: str
    decoded: Decoded
    located: tuple[Located, ...]


@dataclass(frozen=True, kw_only=True)
class DependencyReading:
    """What a repository's dependency files say: exact pins of both ecosystems (one per file,
    package and version), requirements without an exact version, the spots that could not be
    read, the real files read, and the pin files by real path (for a bump)."""

    pins: tuple[Pin, ...] = ()
    unpinned: tuple[Unpinned, ...] = ()
    unreadable: tuple[Unreadable, ...] = ()
    files: tuple[str, ...] = ()
    ecosystems: frozenset[str] = frozenset()
    """The ecosystems whose dependency files the repository has (`PyPI`, `npm`)."""
    pin_files: Mapping[str, PinFile] = field(default_factory=dict)
    links: Mapping[str, str] = field(default_factory=dict)
    """Each symbolic link read through → the real file it names."""

    def pins_of(self, ecosystem: str) -> list[Pin]:
        return [pin for pin in self.pins if pin.ecosystem == ecosystem]


def read_workspace(workspace: Workspace, *, phase: Phase) -> DependencyReading:
    """Every dependency file of a workspace read (see the module docstring); raises
    PinFilesUnlisted when the workspace cannot be listed."""
    return read_dependencies(WorkspaceDependencyFiles(workspace, phase=phase))


def read_dependencies(tree: DependencyFiles) -> DependencyReading:
    """Every dependency file of `tree` read; never raises for what a file contains."""
    return _Reader(tree).run()


def is_dependency_file(path: str) -> bool:
    """Whether the reader reads `path` on its own (not only when a file includes it)."""
    return is_pin_file(path) or is_lock_file(path) or is_npm_lock(path) or is_setup_input(path)


def is_setup_input(path: str) -> bool:
    """Whether `path` is a setup input read for what it installs: a setup.cfg, setup.py,
    tox.ini or noxfile.py at any depth, or the root repository config."""
    return posixpath.basename(path) in SETUP_INPUTS or is_repository_config(path)


class _Reader:
    def __init__(self, tree: DependencyFiles) -> None:
        self.tree = tree
        self.files, self.links = tree.listing()
        self.pins: list[Pin] = []
        self.unpinned: list[Unpinned] = []
        self.unreadable: list[Unreadable] = []
        self.read_files: list[str] = []
        self.pin_files: dict[str, PinFile] = {}
        self.includes: dict[str, list[tuple[str, int, str]]] = {}
        self.followed: set[str] = set()
        self.ecosystems: set[str] = set()
        self.through: dict[str, str] = {}

    def run(self) -> DependencyReading:
        for path in sorted(self.files | set(self.links)):
            if is_dependency_file(path):
                self._top(path)
        return DependencyReading(
            pins=tuple(_distinct(self.pins)),
            unpinned=tuple(self.unpinned),
            unreadable=tuple(self.unreadable),
            files=tuple(self.read_files),
            ecosystems=frozenset(self.ecosystems),
            pin_files=dict(self.pin_files),
            links=dict(self.through),
        )

    def _top(self, path: str) -> None:
        real, why = resolve_in_tree(path, self.links, self.files)
        if real is None:
            if path in self.links:  # a link to a folder, a missing file or out of the tree
                self.unreadable.append(Unreadable(file=path, line=0, reason=why))
            return
        if real != path:
            self.through[path] = real
        if is_lock_file(path) or is_npm_lock(path):
            self._lock(path, real)
        elif is_setup_input(path):
            self._setup_input(path, real)
        else:
            self._requirements_or_pyproject(path, real, stack=())

    def _text(self, real: str, *, pip: bool) -> Decoded | None:
        data = self.tree.read(real)
        if data is None:
            self.unreadable.append(Unreadable(file=real, line=0, reason="the file cannot be read"))
            return None
        try:
            return decode(data) if pip else Decoded(text=data.decode("utf-8"))
        except (Undecodable, UnicodeDecodeError) as exc:
            self.unreadable.append(Unreadable(file=real, line=0, reason=f"not text: {exc}"))
            return None

    def _lock(self, path: str, real: str) -> None:
        if real in self.read_files:
            return
        self.read_files.append(real)
        npm = is_npm_lock(path)
        self.ecosystems.add(NPM if npm else PYPI)
        decoded = self._text(real, pip=False)
        if decoded is None:
            return
        if npm:
            lock = read_npm_lock(real, decoded.text)
            self.pins.extend(lock.pins)
            self.unpinned.extend(lock.unpinned)
            self.unreadable.extend(lock.problems)
            return
        try:
            self.pins.extend(find_locked(real, decoded.text))
        except LockFileInvalid as exc:
            self.unreadable.append(Unreadable(file=real, line=exc.line, reason=exc.reason))

    def _setup_input(self, path: str, real: str) -> None:
        """A setup input: its pins and unpinned requirements, then its includes from `path`."""
        config = is_repository_config(path)
        if (config and path in self.links) or real in self.read_files:
            return  # detection refuses a linked config: the setup phase never runs it
        self.read_files.append(real)
        if not config:
            self.ecosystems.add(PYPI)
        decoded = self._text(real, pip=False)
        if decoded is None:
            return
        read = parse_setup_commands if config else SETUP_INPUTS[posixpath.basename(path)]
        declared = read(real, decoded.text)
        if config and (declared.pins or declared.includes):
            self.ecosystems.add(PYPI)
        self.pins.extend(declared.pins)
        self.unpinned.extend(declared.unpinned)
        self.unreadable.extend(declared.problems)
        for include in declared.includes:
            kind = "-c" if include.constraint else "-r"
            self._include(path, real, include.target, include.line, kind, (real,))

    def _requirements_or_pyproject(self, opened: str, real: str, stack: tuple[str, ...]) -> None:
        """Read `real` (opened as `opened`) once, then follow its includes from `opened`."""
        self.ecosystems.add(PYPI)
        if real not in self.read_files:
            self.read_files.append(real)
            self._parse(real, pyproject=posixpath.basename(opened) == PYPROJECT)
        if opened in self.followed:
            return
        self.followed.add(opened)
        for target, line, kind in self.includes.get(real, []):
            self._include(opened, real, target, line, kind, (*stack, real))

    def _parse(self, real: str, *, pyproject: bool) -> None:
        decoded = self._text(real, pip=not pyproject)
        if decoded is None:
            return
        if pyproject:
            parsed = parse_pyproject(real, decoded.text)
            located, unpinned, problems = parsed.located, parsed.unpinned, parsed.problems
        else:
            read = parse_requirements(real, decoded.text)
            located, unpinned, problems = read.located, read.unpinned, read.problems
            self.includes[real] = [
                (i.target, i.line, "-c" if i.constraint else "-r") for i in read.includes
            ]
        self.pin_files[real] = PinFile(path=real, decoded=decoded, located=tuple(located))
        self.pins.extend(entry.pin for entry in located)
        self.unpinned.extend(unpinned)
        self.unreadable.extend(problems)

    def _include(
        self, opened: str, real: str, target: str, line: int, kind: str, stack: tuple[str, ...]
    ) -> None:
        def refuse(reason: str) -> None:
            self.unreadable.append(
                Unreadable(file=real, line=line, reason=f"{kind} {target}: {reason}")
            )

        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", target):
            return refuse("an include from a URL cannot be read offline")
        if target.startswith(("/", "~")):
            return refuse("an absolute path leads outside the repository")
        joined = posixpath.normpath(posixpath.join(posixpath.dirname(opened), target))
        if joined == ".." or joined.startswith("../"):
            return refuse("the include leads outside the repository")
        included, why = resolve_in_tree(joined, self.links, self.files)
        if included is None:
            return refuse(why)
        if included != joined:
            self.through[joined] = included
        if included in stack:
            chain = " → ".join([*stack, included])
            return refuse(f"an include cycle ({chain}): pip cannot read it")
        self._requirements_or_pyproject(joined, included, stack)
        return None


def _distinct(pins: list[Pin]) -> Iterator[Pin]:
    """One pin per (file, ecosystem, package, version): a lock lists a package per platform."""
    seen: set[tuple[str, str, str, str]] = set()
    for pin in pins:
        name = canonicalize_name(pin.name) if pin.ecosystem == PYPI else pin.name
        key = (pin.file, pin.ecosystem, name, pin.version)
        if key not in seen:
            seen.add(key)
            yield pin
