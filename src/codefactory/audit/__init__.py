"""Audit log: a tamper-evident, append-only Merkle log of every fact of every run."""

from codefactory.audit.errors import (
    AuditError,
    CheckpointInvalid,
    EventNotRecordable,
    LogInconsistent,
    ProofInvalid,
    RecordUnreadable,
)
from codefactory.audit.port import (
    AuditLog,
    AuditRecord,
    ConsistencyProof,
    InclusionProof,
    LogReport,
    SignedCheckpoint,
)

__all__ = [
    "AuditError",
    "AuditLog",
    "AuditRecord",
    "CheckpointInvalid",
    "ConsistencyProof",
    "EventNotRecordable",
    "InclusionProof",
    "LogInconsistent",
    "LogReport",
    "ProofInvalid",
    "RecordUnreadable",
    "SignedCheckpoint",
]
