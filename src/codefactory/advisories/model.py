"""What reading dependency files yields: exact pins, unpinned requirements, unreadable spots."""

from __future__ import annotations

from dataclasses import dataclass, field

PYPI = "PyPI"
NPM = "npm"


@dataclass(frozen=True, kw_only=True)
class Pin:
    """One exact version a repository installs: `file` is the repository path of the file
    that says so (the real file when it was read through a symbolic link), `line` 1-based
    (0 when unknown), `ecosystem` as OSV names it (`PyPI`, `npm`).

    `hashes` (`--hash` values of a hash-pinned requirement) and `marker` (its PEP 508
    environment marker) describe the pin; they are not part of its identity.
    """

    file: str
    name: str
    version: str
    line: int
    ecosystem: str = PYPI
    hashes: tuple[str, ...] = field(default=(), compare=False)
    marker: str = field(default="", compare=False)


@dataclass(frozen=True, kw_only=True)
class Unpinned:
    """A requirement that names no exact version, so no advisory can be matched to it:
    `kind` is `range` (a specifier other than `==`/`===`, or none), `url`, `vcs`, `path` or
    `editable`."""

    file: str
    line: int
    requirement: str
    kind: str


@dataclass(frozen=True, kw_only=True)
class Unreadable:
    """A spot of a dependency file the reader could not fully understand: `reason` says what
    (`line` 0: the whole file). A blocking finding: an unread pin is not a safe pin."""

    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.reason}"


@dataclass(frozen=True, kw_only=True)
class Located:
    """An exact pin and where its version is written: the physical line (1-based; 0 when it
    cannot be located, so it cannot be rewritten) and columns of the version, and the
    physical lines of the whole entry (a requirement with its `--hash` continuation lines).
    """

    pin: Pin
    version_line: int
    start: int
    end: int
    lines: tuple[int, ...]


@dataclass(frozen=True, kw_only=True)
class DeclaringFile:
    """What one dependency file declares: its located exact pins, its unpinned requirements
    and `problems`, what cannot be read (requirements files and pyproject.toml alike)."""

    located: tuple[Located, ...] = ()
    unpinned: tuple[Unpinned, ...] = ()
    problems: tuple[Unreadable, ...] = ()

    @property
    def pins(self) -> list[Pin]:
        return [entry.pin for entry in self.located]
