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
from codefactory.advisories.osv import DEFAULT_ADVISORIES, Advisory, AdvisoryDatabase, Freshness
from codefactory.advisories.pins import Pin, find_pins, is_pin_file, read_pin_files, rewrite_pin

__all__ = [
    "DEFAULT_ADVISORIES",
    "Advisory",
    "AdvisoryDatabase",
    "Freshness",
    "AdvisoryError",
    "AdvisoryFileInvalid",
    "AdvisoryImportFailed",
    "ImportReport",
    "LockFileInvalid",
    "Pin",
    "PinFilesUnlisted",
    "RequirementsInvalid",
    "find_locked",
    "find_pins",
    "import_advisories",
    "index_path",
    "is_lock_file",
    "is_pin_file",
    "read_pin_files",
    "rewrite_pin",
]
