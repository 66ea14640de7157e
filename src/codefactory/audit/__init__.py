"""Audit log: a tamper-evident, append-only record of every fact of every run."""

from codefactory.audit.chain import ChainReport
from codefactory.audit.errors import AuditError, EventNotRecordable, RecordUnreadable
from codefactory.audit.port import AuditLog, AuditRecord

__all__ = [
    "AuditError",
    "AuditLog",
    "AuditRecord",
    "ChainReport",
    "EventNotRecordable",
    "RecordUnreadable",
]
