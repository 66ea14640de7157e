"""Audit log errors.

AuditError
 ├── EventNotRecordable   an event cannot be encoded as a leaf (bad name, naive time, NaN, …)
 └── RecordUnreadable     a stored row cannot be decoded back into a record (tampered or corrupt)

A chain that does not verify is not an exception: `AuditLog.verify()` returns a `ChainReport`
naming the first bad event, so a caller can show it to an examiner.
"""

from __future__ import annotations


class AuditError(Exception):
    """Base class for every audit log failure."""


class EventNotRecordable(AuditError):
    """The event cannot become a leaf of the log; nothing was written."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"audit event {name!r} cannot be recorded: {message}")
        self.name = name
        self.message = message


class RecordUnreadable(AuditError):
    """A stored event cannot be decoded; run `verify()` to see what was changed."""

    def __init__(self, seq: int, message: str) -> None:
        super().__init__(f"audit event {seq} cannot be read: {message}")
        self.seq = seq
        self.message = message
