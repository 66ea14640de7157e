"""Audit log: a tamper-evident, append-only Merkle log of every fact of every run."""

from __future__ import annotations

from typing import TYPE_CHECKING

from codefactory.lazy import lazy_exports

if TYPE_CHECKING:
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

__getattr__ = lazy_exports(
    __name__,
    globals(),
    {
        "AuditError": "codefactory.audit.errors",
        "CheckpointInvalid": "codefactory.audit.errors",
        "EventNotRecordable": "codefactory.audit.errors",
        "LogInconsistent": "codefactory.audit.errors",
        "ProofInvalid": "codefactory.audit.errors",
        "RecordUnreadable": "codefactory.audit.errors",
        "AuditLog": "codefactory.audit.port",
        "AuditRecord": "codefactory.audit.port",
        "ConsistencyProof": "codefactory.audit.port",
        "InclusionProof": "codefactory.audit.port",
        "LogReport": "codefactory.audit.port",
        "SignedCheckpoint": "codefactory.audit.port",
    },
)
