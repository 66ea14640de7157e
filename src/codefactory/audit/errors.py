"""Audit log errors.

AuditError
 ├── EventNotRecordable   an event cannot be encoded as a leaf (bad name, naive time, NaN, …)
 ├── RecordUnreadable     a stored row cannot be decoded back into a record (tampered or corrupt)
 ├── ProofInvalid         a proof is malformed or does not lead to the root it claims
 ├── CheckpointInvalid    a checkpoint is malformed, from another log, or not signed by its key
 └── LogInconsistent      the log no longer extends a checkpoint it signed (rewritten/truncated)

A log that does not verify is not an exception: `AuditLog.verify()` returns a `LogReport`
naming the first bad index, so a caller can show it to an examiner.
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


class ProofInvalid(AuditError):
    """A proof (or its request) is malformed, or it does not verify against its root."""


class CheckpointInvalid(AuditError):
    """A checkpoint cannot be trusted; `kind` says why, for scripts and tests.

    Kinds: `malformed`, `foreign-origin` (another log's checkpoint), `unknown-key` (no key of
    this log has that key id), `bad-signature`.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class LogInconsistent(AuditError):
    """The log does not extend a checkpoint: events were removed or rewritten after it."""

    def __init__(self, size: int, message: str) -> None:
        super().__init__(message)
        self.size = size
