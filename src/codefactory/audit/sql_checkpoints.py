"""The stored checkpoints of the log: which ones hold, extending them, proving consistency.

Helpers of `SqlAuditLog` (`sql.py`): the checkpoints table is read as signed notes, never
trusted by its columns alone.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, select

from codefactory.audit.checkpoint import Checkpoint, open_checkpoint
from codefactory.audit.errors import CheckpointInvalid, LogInconsistent
from codefactory.audit.merkle import consistency_proof, range_hash, verify_consistency
from codefactory.audit.note import NoteVerifier
from codefactory.audit.port import ConsistencyProof, LogReport
from codefactory.audit.tree import StoredTree
from codefactory.audit.verify import TrustedCheckpoint
from codefactory.store.identity_tables import AuditCheckpointRow


def stored_checkpoints(
    connection: Connection, origin: str, verifiers: Sequence[NoteVerifier]
) -> tuple[list[TrustedCheckpoint], list[str]]:
    trusted: list[TrustedCheckpoint] = []
    untrusted: list[str] = []
    for row in connection.execute(select(AuditCheckpointRow).order_by(AuditCheckpointRow.id)):
        label = f"signed checkpoint #{row.id}"
        try:
            checkpoint, _ = open_checkpoint(row.note, origin=origin, verifiers=verifiers)
        except CheckpointInvalid as error:
            untrusted.append(f"{label} does not verify ({error.kind}): {error}")
            continue
        if (checkpoint.size, checkpoint.root.hex()) != (row.size, row.root_hash):
            untrusted.append(f"{label}: its size or root column was edited")
            continue
        trusted.append(TrustedCheckpoint(checkpoint=checkpoint, label=label))
    return trusted, untrusted


def consistency(tree: StoredTree, first: int, second: int) -> ConsistencyProof:
    return ConsistencyProof(
        first=first,
        second=second,
        first_root=range_hash(tree, 0, first),
        second_root=range_hash(tree, 0, second),
        hashes=tuple(consistency_proof(tree, first, second)),
    )


def with_consistency(report: LogReport, given: Checkpoint, tree: StoredTree) -> LogReport:
    """Add the proof that the verified log extends the given checkpoint, checked end to end."""
    proof = consistency(tree, given.size, report.count)
    verify_consistency(
        given.size, report.count, proof.hashes, given.root, bytes.fromhex(report.root_hash)
    )
    reason = (
        f"{report.reason}; the log extends the given checkpoint of size {given.size} "
        f"(consistency proof of {len(proof.hashes)} hashes verifies)"
    )
    return LogReport(
        ok=True,
        count=report.count,
        reason=reason,
        root_hash=report.root_hash,
        checkpoints=report.checkpoints,
        consistency=proof,
    )


def require_extends(tree: StoredTree, latest: AuditCheckpointRow, size: int) -> None:
    if latest.size > size:
        raise LogInconsistent(
            latest.size,
            f"the log holds {size} events but checkpoint #{latest.id} signed {latest.size}: "
            "events were removed; refusing to sign",
        )
    if range_hash(tree, 0, latest.size).hex() != latest.root_hash:
        raise LogInconsistent(
            latest.size,
            f"the first {latest.size} events no longer hash to checkpoint #{latest.id}'s root: "
            "the log was rewritten; refusing to sign (run `codefactory audit verify`)",
        )
