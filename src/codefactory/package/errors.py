"""Change-package errors.

PackageError
 ├── PackageExists        the run's package folder exists already; packages are never rewritten
 ├── UnsafeName           a run id or evidence name would escape the package folder
 └── DuplicateEvidence    two checks produced evidence under the same file name
"""

from __future__ import annotations

from pathlib import Path


class PackageError(Exception):
    """Base class for every change-package failure."""


class PackageExists(PackageError):
    """A package is evidence: once written it is never replaced."""

    def __init__(self, run_id: str, directory: Path) -> None:
        super().__init__(f"the change package of run {run_id} already exists at {directory}")
        self.run_id = run_id
        self.directory = directory


class UnsafeName(PackageError):
    """A name used as a path is not a plain file name."""

    def __init__(self, what: str, name: str) -> None:
        super().__init__(f"unsafe {what} for a package path: {name!r}")
        self.what = what
        self.name = name


class DuplicateEvidence(PackageError):
    """Two checks would overwrite each other's evidence."""

    def __init__(self, name: str, checks: tuple[str, str]) -> None:
        super().__init__(f"checks {checks[0]} and {checks[1]} both produced evidence {name}")
        self.name = name
        self.checks = checks
