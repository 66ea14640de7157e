"""What `audit verify` asks of the witnesses' cosignatures (docs/witnesses.md).

Every stored cosignature by a configured witness is re-verified with the witness's key from
the configuration (never from the data folder) over the checkpoint note stored beside it.
Valid ones become checkpoints the recomputed tree must match, labelled with the witness, so a
history rewritten with the issuer's key still fails, naming the witness's evidence. The
latest checkpoint the log signed must carry the quorum's cosignatures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from codefactory.audit.checkpoint import Checkpoint, open_checkpoint
from codefactory.audit.cosignature import verify_cosignature
from codefactory.audit.errors import CheckpointInvalid
from codefactory.audit.note import NoteVerifier, split_note
from codefactory.audit.settings import WitnessSettings
from codefactory.audit.sql_cosignatures import StoredCosignature
from codefactory.audit.verify import TrustedCheckpoint

UNWITNESSED = (
    "the audit log is UNWITNESSED: no witness is configured (audit.witnesses), so anyone "
    "with a copy of the data folder and the issuer key could rewrite its history unnoticed"
)


@dataclass
class WitnessEvidence:
    """Valid cosignatures as checkpoints to match, by (size, root); rows that fail."""

    trusted: list[TrustedCheckpoint] = field(default_factory=list)
    cosigned_by: dict[tuple[int, bytes], set[str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    latest: dict[str, tuple[int, str]] = field(default_factory=dict)
    """Per witness name: the largest size it cosigned for us, and that checkpoint's note."""


def gather(
    rows: Sequence[StoredCosignature],
    witnesses: Sequence[WitnessSettings],
    *,
    origin: str,
    log_verifiers: Sequence[NoteVerifier],
) -> WitnessEvidence:
    """Verify each row by a configured witness: its cosignature, and the log's signature on
    the note it covers. Rows of witnesses no longer configured are ignored."""
    by_key = {witness.key.encoded(): witness for witness in witnesses}
    evidence = WitnessEvidence()
    for row in rows:
        witness = by_key.get(row.witness_key)
        if witness is None:
            continue
        label = f"the checkpoint of size {row.size} cosigned by witness {witness.name}"
        try:
            text, _ = split_note(row.note)
            cosignature = verify_cosignature(text, row.cosignature, witness.key)
            checkpoint, _ = open_checkpoint(row.note, origin=origin, verifiers=log_verifiers)
        except CheckpointInvalid as error:
            evidence.problems.append(
                f"cosignature #{row.id} of witness {witness.name} does not verify "
                f"({error.kind}): {error}; the stored witness evidence was altered"
            )
            continue
        del cosignature
        if (checkpoint.size, checkpoint.root.hex()) != (row.size, row.root_hash):
            evidence.problems.append(
                f"cosignature #{row.id} of witness {witness.name}: its size or root column "
                "was edited"
            )
            continue
        evidence.trusted.append(TrustedCheckpoint(checkpoint=checkpoint, label=label))
        key = (checkpoint.size, checkpoint.root)
        evidence.cosigned_by.setdefault(key, set()).add(witness.name)
        if checkpoint.size >= evidence.latest.get(witness.name, (-1, ""))[0]:
            evidence.latest[witness.name] = (checkpoint.size, row.note)
    return evidence


def quorum_problem(
    evidence: WitnessEvidence,
    witnesses: Sequence[WitnessSettings],
    quorum: int,
    latest: Checkpoint | None,
    count: int,
) -> tuple[str | None, dict[str, dict[str, object]]]:
    """Why the latest checkpoint lacks the quorum (None if it has it), and per witness its
    status on that checkpoint."""
    if latest is None:
        status: dict[str, dict[str, object]] = {
            w.name: {"cosigned_latest": False, "url": w.url} for w in witnesses
        }
        if count == 0:
            return None, status
        return (
            f"the log holds {count} events but no signed checkpoint: nothing is witnessed "
            "(run `codefactory audit checkpoint`)",
            status,
        )
    names = evidence.cosigned_by.get((latest.size, latest.root), set())
    status = {
        w.name: {"cosigned_latest": w.name in names, "url": w.url, "size": latest.size}
        for w in witnesses
    }
    if len(names) >= quorum:
        return None, status
    missing = ", ".join(w.name for w in witnesses if w.name not in names)
    return (
        f"the latest checkpoint (size {latest.size}) is cosigned by {len(names)} of the "
        f"{quorum} witnesses required; no valid cosignature from: {missing} (a witness was "
        "down or refused it, see the witness-failed audit events; or the history was "
        "rewritten and re-signed; `codefactory audit checkpoint` asks them again)",
        status,
    )


def unwitnessed_tail(evidence: WitnessEvidence, quorum: int, count: int) -> str | None:
    """A warning naming the events after the last checkpoint the quorum cosigned: they are
    in the log but no witness vouches for them yet (an event appended by anyone with write
    access to the data folder looks the same until the next checkpoint is witnessed)."""
    sizes = [size for (size, _), names in evidence.cosigned_by.items() if len(names) >= quorum]
    witnessed = max(sizes, default=0)
    if count <= witnessed:
        return None
    first, last = witnessed, count - 1
    span = f"event {first}" if first == last else f"events {first}..{last}"
    return (
        f"{span} ({count - witnessed} of {count}) come after the latest witnessed checkpoint "
        f"(size {witnessed}) and are not yet witnessed (`codefactory audit checkpoint`)"
    )
