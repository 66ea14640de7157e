"""Security advisories (OSV, offline) and the dependency pins they are matched against."""

from __future__ import annotations

from typing import TYPE_CHECKING

from codefactory.lazy import lazy_exports

if TYPE_CHECKING:
    from codefactory.advisories.errors import (
        AdvisoryError,
        AdvisoryFileInvalid,
        AdvisoryImportFailed,
        LockFileInvalid,
        PinFilesUnlisted,
        RequirementsInvalid,
    )
    from codefactory.advisories.importer import ImportReport, import_advisories, index_path
    from codefactory.advisories.locks import find_locked, is_lock_file
    from codefactory.advisories.model import Located, Pin, Unpinned, Unreadable
    from codefactory.advisories.npm_locks import is_npm_lock, read_npm_lock
    from codefactory.advisories.osv import DEFAULT_ADVISORIES, Advisory, AdvisoryDatabase, Freshness
    from codefactory.advisories.pins import find_pins, is_pin_file, rewrite_pin
    from codefactory.advisories.reading import (
        DependencyReading,
        FolderDependencyFiles,
        PinFile,
        WorkspaceDependencyFiles,
        is_dependency_file,
        read_dependencies,
        read_workspace,
    )

__all__ = [
    "DEFAULT_ADVISORIES",
    "Advisory",
    "AdvisoryDatabase",
    "AdvisoryError",
    "AdvisoryFileInvalid",
    "AdvisoryImportFailed",
    "DependencyReading",
    "FolderDependencyFiles",
    "Freshness",
    "ImportReport",
    "Located",
    "LockFileInvalid",
    "Pin",
    "PinFile",
    "PinFilesUnlisted",
    "RequirementsInvalid",
    "Unpinned",
    "Unreadable",
    "WorkspaceDependencyFiles",
    "find_locked",
    "find_pins",
    "import_advisories",
    "index_path",
    "is_dependency_file",
    "is_lock_file",
    "is_npm_lock",
    "is_pin_file",
    "read_dependencies",
    "read_npm_lock",
    "read_workspace",
    "rewrite_pin",
]

__getattr__ = lazy_exports(
    __name__,
    globals(),
    {
        "AdvisoryError": "codefactory.advisories.errors",
        "AdvisoryFileInvalid": "codefactory.advisories.errors",
        "AdvisoryImportFailed": "codefactory.advisories.errors",
        "LockFileInvalid": "codefactory.advisories.errors",
        "PinFilesUnlisted": "codefactory.advisories.errors",
        "RequirementsInvalid": "codefactory.advisories.errors",
        "ImportReport": "codefactory.advisories.importer",
        "import_advisories": "codefactory.advisories.importer",
        "index_path": "codefactory.advisories.importer",
        "find_locked": "codefactory.advisories.locks",
        "is_lock_file": "codefactory.advisories.locks",
        "Located": "codefactory.advisories.model",
        "Pin": "codefactory.advisories.model",
        "Unpinned": "codefactory.advisories.model",
        "Unreadable": "codefactory.advisories.model",
        "is_npm_lock": "codefactory.advisories.npm_locks",
        "read_npm_lock": "codefactory.advisories.npm_locks",
        "DEFAULT_ADVISORIES": "codefactory.advisories.osv",
        "Advisory": "codefactory.advisories.osv",
        "AdvisoryDatabase": "codefactory.advisories.osv",
        "Freshness": "codefactory.advisories.osv",
        "find_pins": "codefactory.advisories.pins",
        "is_pin_file": "codefactory.advisories.pins",
        "rewrite_pin": "codefactory.advisories.pins",
        "DependencyReading": "codefactory.advisories.reading",
        "FolderDependencyFiles": "codefactory.advisories.reading",
        "PinFile": "codefactory.advisories.reading",
        "WorkspaceDependencyFiles": "codefactory.advisories.reading",
        "is_dependency_file": "codefactory.advisories.reading",
        "read_dependencies": "codefactory.advisories.reading",
        "read_workspace": "codefactory.advisories.reading",
    },
)
