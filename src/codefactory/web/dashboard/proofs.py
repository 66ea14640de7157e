"""The audit proofs of a run: each of its events proven (RFC 9162 §2.1.3 inclusion proof,
checked here with the verifier examiners use) to be in the latest signed checkpoint, and
which witnesses cosigned that checkpoint (c2sp.org/tlog-cosignature).

The checkpoint is the latest one the log stored (`latest_checkpoint()`): a page view never
signs one or sends one to the witnesses. The factory signs a checkpoint when a run comes to
rest (`audit/publishing.py`), so a run waiting in review is in it; an event recorded since
says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from codefactory.audit.errors import AuditError
from codefactory.audit.merkle import verify_inclusion
from codefactory.audit.port import AuditLog, AuditRecord, SignedCheckpoint

MAX_PROOFS = 500
"""Events proven per page view; a run with more says how many were left unproven."""
COSIGNATURE_MARK = "— "


@dataclass(frozen=True, kw_only=True)
class EventProof:
    """One event's proof: its leaf index, path length, and the outcome (`verified`, or why
    not: `after the checkpoint`, the verifier's error)."""

    seq: int
    name: str
    leaf_hash: str
    path_length: int
    outcome: str
    verified: bool


@dataclass(frozen=True, kw_only=True)
class RunProofs:
    """The checkpoint the events were proven against and each event's proof."""

    size: int
    root_hash: str
    note: str
    """The signed note with every verified witness cosignature line."""
    witnesses: int
    """How many witness cosignatures the note carries."""
    witnessing: int
    """How many witnesses the factory's log sends its checkpoints to (0: none)."""
    proofs: tuple[EventProof, ...]
    unproven: int
    error: str = ""
    """Why no checkpoint could be had (the log's `AuditError`), else ""."""


def _cosigned(audit: AuditLog, signed: SignedCheckpoint) -> tuple[str, int]:
    """The note with its witnesses' verified cosignature lines and how many
    (`WitnessedAuditLog.cosigned_note`; a log without witnesses has none)."""
    cosigned_note = getattr(audit, "cosigned_note", None)
    if cosigned_note is None:
        return signed.note, 0
    note = str(cosigned_note(signed))
    own = signed.note.count("\n" + COSIGNATURE_MARK)
    return note, note.count("\n" + COSIGNATURE_MARK) - own


def prove(audit: AuditLog, size: int, root: bytes, record: AuditRecord) -> EventProof:
    """`record`'s inclusion in the tree of `size` leaves with `root`, verified here."""
    if record.seq >= size:
        return EventProof(
            seq=record.seq, name=record.name, leaf_hash=record.leaf_hash, path_length=0,
            outcome="recorded after the checkpoint", verified=False,
        )  # fmt: skip
    try:
        proof = audit.inclusion_proof(record.seq, size)
        verify_inclusion(record.seq, size, bytes.fromhex(record.leaf_hash), proof.hashes, root)
    except (AuditError, ValueError) as err:
        return EventProof(
            seq=record.seq, name=record.name, leaf_hash=record.leaf_hash, path_length=0,
            outcome=f"NOT PROVEN: {err}", verified=False,
        )  # fmt: skip
    return EventProof(
        seq=record.seq, name=record.name, leaf_hash=record.leaf_hash,
        path_length=len(proof.hashes), outcome="verified", verified=True,
    )  # fmt: skip


def run_proofs(audit: AuditLog, events: Sequence[AuditRecord], *, witnessing: int) -> RunProofs:
    """Prove the first `MAX_PROOFS` of a run's `events` in the log's latest checkpoint;
    `witnessing` is how many witnesses the factory is configured with."""
    try:
        signed = audit.latest_checkpoint()
    except AuditError as err:
        signed, problem = None, str(err)
    else:
        problem = "no checkpoint has been signed yet"
    if signed is None:
        return RunProofs(
            size=0, root_hash="", note="", witnesses=0, witnessing=witnessing, proofs=(),
            unproven=len(events), error=problem,
        )  # fmt: skip
    note, witnesses = _cosigned(audit, signed)
    checkpoint = signed.checkpoint
    proofs = tuple(prove(audit, checkpoint.size, checkpoint.root, e) for e in events[:MAX_PROOFS])
    return RunProofs(
        size=checkpoint.size, root_hash=checkpoint.root.hex(), note=note,
        witnesses=witnesses, witnessing=witnessing, proofs=proofs,
        unproven=max(0, len(events) - MAX_PROOFS),
    )  # fmt: skip
