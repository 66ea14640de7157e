"""Security advisories (OSV, offline) and the dependency pins they are matched against."""

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
