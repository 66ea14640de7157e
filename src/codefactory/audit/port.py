"""The audit log port: events in; records, signed checkpoints, proofs and a verdict out.

ARCHITECTURE.md names the port's verbs: append, checkpoint, proofs, verify. Everything
returned is plain data an examiner can re-check with their own RFC 9162 code.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session

from codefactory.audit.checkpoint import Checkpoint
from codefactory.audit.leaf import StoredLeaf
from codefactory.domain import AuditEvent


@dataclass(frozen=True, kw_only=True)
class AuditRecord:
    """An event as the log holds it: its leaf index and leaf hash."""

    seq: int
    """The leaf index, from 0 (RFC 9162 §2.1)."""
    name: str
    actor: str
    run_id: str
    at: datetime
    data: dict[str, Any]
    leaf_hash: str


@dataclass(frozen=True, kw_only=True)
class SignedCheckpoint:
    """A checkpoint and its C2SP signed note, exactly as published."""

    checkpoint: Checkpoint
    note: str
    verifier_key: str
    """The signing key as a C2SP verifier key string (`name+keyid+base64key`)."""


@dataclass(frozen=True, kw_only=True)
class InclusionProof:
    """RFC 9162 §2.1.3: leaf `index` is in the tree of `size` leaves whose root is `root`."""

    index: int
    size: int
    leaf_hash: bytes
    hashes: tuple[bytes, ...]
    root: bytes

    def as_dict(self) -> dict[str, Any]:
        return {
            "leaf_index": self.index,
            "tree_size": self.size,
            "leaf_hash": self.leaf_hash.hex(),
            "inclusion_path": [node.hex() for node in self.hashes],
            "root_hash": self.root.hex(),
        }


@dataclass(frozen=True, kw_only=True)
class ConsistencyProof:
    """RFC 9162 §2.1.4: the tree of `first` leaves is a prefix of the tree of `second`."""

    first: int
    second: int
    first_root: bytes
    second_root: bytes
    hashes: tuple[bytes, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "first": self.first,
            "second": self.second,
            "first_root_hash": self.first_root.hex(),
            "second_root_hash": self.second_root.hex(),
            "consistency_path": [node.hex() for node in self.hashes],
        }


@dataclass(frozen=True, kw_only=True)
class LogReport:
    """The outcome of `verify`: ok, or the first bad index and what happened there."""

    ok: bool
    count: int
    reason: str
    root_hash: str = ""
    """Hex root of the tree recomputed from the rows (when they verify)."""
    first_bad_seq: int | None = None
    first_bad_name: str | None = None
    checkpoints: int = 0
    """How many signed checkpoints the recomputed tree was compared with."""
    consistency: ConsistencyProof | None = None
    """With `verify(checkpoint=...)`: the proof that the log extends that checkpoint."""
    witnessed: bool | None = None
    """Whether witnesses are configured and checked (None: not asked, e.g. a bare log)."""
    witnesses: dict[str, Any] | None = None
    """Per witness: whether its cosignature on the latest checkpoint verifies, and why not."""
    warnings: tuple[str, ...] = ()
    """Loud notes that do not fail the check (an unwitnessed log, dropped SIEM events)."""
    siem: dict[str, Any] | None = None
    """The SIEM stream's state: target, format, events dropped so far."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "witnessed": self.witnessed,
            "witnesses": self.witnesses,
            "warnings": list(self.warnings),
            "siem": self.siem,
            "ok": self.ok,
            "count": self.count,
            "reason": self.reason,
            "root_hash": self.root_hash,
            "first_bad_seq": self.first_bad_seq,
            "first_bad_name": self.first_bad_name,
            "checkpoints": self.checkpoints,
            "consistency": self.consistency.as_dict() if self.consistency else None,
        }


class AuditLog(Protocol):
    """An append-only Merkle log of audit events with signed checkpoints and proofs."""

    def append(self, event: AuditEvent, *, session: Session | None = None) -> int:
        """Record `event` and return its leaf index; with `session`, in that transaction."""
        ...

    def events(self, run_id: str | None = None) -> list[AuditRecord]:
        """The recorded events in index order, optionally only those of one run."""
        ...

    def latest(self, name: str) -> AuditRecord | None:
        """The most recent event called `name`, or None."""
        ...

    def verify(self, *, checkpoint: str | None = None) -> LogReport:
        """Recompute everything; with a saved checkpoint note, prove the log extends it."""
        ...

    def checkpoint(self) -> SignedCheckpoint:
        """Sign a checkpoint of the current tree (or return the latest if the tree is unchanged)."""
        ...

    def latest_checkpoint(self) -> SignedCheckpoint | None:
        """The latest stored checkpoint whose signature verifies, signing nothing; None when
        there is none yet. For readers (the dashboard): a page view never signs or sends a
        checkpoint to the witnesses."""
        ...

    def inclusion_proof(self, index: int, size: int) -> InclusionProof:
        """Proof that leaf `index` is in the tree of `size` leaves."""
        ...

    def consistency_proof(self, first: int, second: int) -> ConsistencyProof:
        """Proof that the tree of `first` leaves is a prefix of the tree of `second`."""
        ...

    def leaves(self) -> Iterator[StoredLeaf]:
        """Every stored leaf in index order, for export."""
        ...


class ForwardingAuditLog:
    """An `AuditLog` that hands every call to the log it wraps (`self._log`).

    The base of the wrappers that add one thing to a log (the SIEM stream, witness
    cosignatures): a subclass overrides only the verbs it changes.
    """

    def __init__(self, log: AuditLog) -> None:
        self._log = log

    def append(self, event: AuditEvent, *, session: Session | None = None) -> int:
        return self._log.append(event, session=session)

    def events(self, run_id: str | None = None) -> list[AuditRecord]:
        return self._log.events(run_id)

    def latest(self, name: str) -> AuditRecord | None:
        return self._log.latest(name)

    def verify(self, *, checkpoint: str | None = None) -> LogReport:
        return self._log.verify(checkpoint=checkpoint)

    def checkpoint(self) -> SignedCheckpoint:
        return self._log.checkpoint()

    def latest_checkpoint(self) -> SignedCheckpoint | None:
        return self._log.latest_checkpoint()

    def inclusion_proof(self, index: int, size: int) -> InclusionProof:
        return self._log.inclusion_proof(index, size)

    def consistency_proof(self, first: int, second: int) -> ConsistencyProof:
        return self._log.consistency_proof(first, second)

    def leaves(self) -> Iterator[StoredLeaf]:
        return self._log.leaves()
