"""Security advisories (OSV, offline) and the dependency pins they are matched against."""

from codefactory.advisories.errors import (
    AdvisoryError,
    AdvisoryFileInvalid,
    PinFilesUnlisted,
    RequirementsInvalid,
)
from codefactory.advisories.osv import DEFAULT_ADVISORIES, Advisory, AdvisoryDatabase
from codefactory.advisories.pins import Pin, find_pins, read_pin_files, rewrite_pin

__all__ = [
    "DEFAULT_ADVISORIES",
    "Advisory",
    "AdvisoryDatabase",
    "AdvisoryError",
    "AdvisoryFileInvalid",
    "Pin",
    "PinFilesUnlisted",
    "RequirementsInvalid",
    "find_pins",
    "read_pin_files",
    "rewrite_pin",
]
