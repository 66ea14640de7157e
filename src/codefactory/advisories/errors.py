"""Advisory and pin errors (what a dependency file cannot say is not an error: the reader
returns it as an `Unreadable` spot, see `reading.py`).

AdvisoryError
 ├── AdvisoryFileInvalid     an advisory file is not valid YAML/JSON or not OSV-shaped
 ├── RequirementsInvalid     a requirements file or pyproject.toml could not be parsed
 │    └── LockFileInvalid    a lock file (uv.lock, poetry.lock, Pipfile.lock, pylock.toml) could not
 │                           be parsed
 ├── PinFilesUnlisted        the workspace could not be listed to find its dependency files
 └── AdvisoryImportFailed    `advisories import` could not read its source; nothing was imported
"""

from __future__ import annotations

from pathlib import Path


class AdvisoryError(Exception):
    """Base class for every failure reading advisories or dependency pins."""


class AdvisoryFileInvalid(AdvisoryError):
    """One advisory file is malformed; the database refuses to load rather than skip it."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"invalid advisory file {path}: {reason}")
        self.path = path
        self.reason = reason


class RequirementsInvalid(AdvisoryError):
    """A dependency file could not be parsed, so its pins cannot be judged."""

    def __init__(self, path: str, line: int, reason: str) -> None:
        where = f"{path}:{line}" if line else path
        super().__init__(f"cannot parse {where}: {reason}")
        self.path = path
        self.line = line
        self.reason = reason


class PinFilesUnlisted(AdvisoryError):
    """Listing the workspace failed, so its dependency files are unknown."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"could not list the workspace's files: {reason}")
        self.reason = reason


class LockFileInvalid(RequirementsInvalid):
    """A lock file could not be parsed, so the versions it resolves cannot be judged."""


class AdvisoryImportFailed(AdvisoryError):
    """An import was refused as a whole (`source` names what, `reason` why)."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"cannot import advisories from {source}: {reason}")
        self.source = source
        self.reason = reason
