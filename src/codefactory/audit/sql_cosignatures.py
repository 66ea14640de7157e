"""Witnesses' cosignatures in the store (`audit_cosignatures`), kept with the note they cover."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from codefactory.audit.checkpoint import Checkpoint
from codefactory.store.identity_tables import AuditCosignatureRow


@dataclass(frozen=True, kw_only=True)
class StoredCosignature:
    """One row, unverified: which witness key, the checkpoint note, the cosignature line."""

    id: int
    witness_key: str
    size: int
    root_hash: str
    note: str
    cosignature: str


class SqlCosignatures:
    """Reads and writes `audit_cosignatures`."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add(
        self, *, witness_key: str, checkpoint: Checkpoint, note: str, line: str, timestamp: int
    ) -> None:
        """Keep a cosignature the caller verified."""
        with Session(self._engine) as session, session.begin():
            session.add(
                AuditCosignatureRow(
                    witness_key=witness_key,
                    size=checkpoint.size,
                    root_hash=checkpoint.root.hex(),
                    note=note,
                    cosignature=line,
                    cosigned_at=timestamp,
                    created_at=datetime.now(UTC),
                )
            )

    def last_size(self, witness_key: str) -> int:
        """The largest size this witness cosigned for us (0 if none): the `old` we send."""
        with Session(self._engine) as session:
            size = session.scalar(
                select(func.max(AuditCosignatureRow.size)).where(
                    AuditCosignatureRow.witness_key == witness_key
                )
            )
        return int(size or 0)

    def has(self, witness_key: str, checkpoint: Checkpoint) -> bool:
        with Session(self._engine) as session:
            found = session.scalar(
                select(AuditCosignatureRow.id)
                .where(AuditCosignatureRow.witness_key == witness_key)
                .where(AuditCosignatureRow.size == checkpoint.size)
                .where(AuditCosignatureRow.root_hash == checkpoint.root.hex())
                .limit(1)
            )
        return found is not None

    def all(self) -> list[StoredCosignature]:
        with Session(self._engine) as session:
            rows = session.scalars(select(AuditCosignatureRow).order_by(AuditCosignatureRow.id))
            return [
                StoredCosignature(
                    id=row.id,
                    witness_key=row.witness_key,
                    size=row.size,
                    root_hash=row.root_hash,
                    note=row.note,
                    cosignature=row.cosignature,
                )
                for row in rows
            ]
