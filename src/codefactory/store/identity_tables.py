"""Tables of agents, delegation tokens and the audit log's tree cache and checkpoints (issue 4).

Keys are not here: private keys stay in files under the data folder (or a KMS/HSM behind the
`Issuer` port); only public material is stored.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from codefactory.store.models import Base

__all__ = [
    "AgentRow",
    "AuditCheckpointRow",
    "AuditCosignatureRow",
    "AuditLogRow",
    "AuditSubtreeRow",
    "Base",
    "DelegationTokenRow",
]


class AgentRow(Base):
    """A registered non-human identity: who it is, who issued it, who answers for it."""

    __tablename__ = "agents"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(256))
    issuer: Mapped[str] = mapped_column(String(256))
    owner: Mapped[str] = mapped_column(String(256))
    engines: Mapped[list[str]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), index=True)
    status_reason: Mapped[str] = mapped_column(Text, default="")
    ssh_public_key: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DelegationTokenRow(Base):
    """A delegation token as issued to a run (the compact JWT) and its revocation."""

    __tablename__ = "delegation_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    agent_id: Mapped[str] = mapped_column(String(128), index=True)
    sponsor: Mapped[str] = mapped_column(String(256))
    token: Mapped[str] = mapped_column(Text)
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_reason: Mapped[str] = mapped_column(Text, default="")


class AuditLogRow(Base):
    """The log's identity: one row naming its origin, the first line of every checkpoint."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    origin: Mapped[str] = mapped_column(String(256))


class AuditSubtreeRow(Base):
    """A cached hash of a perfect subtree (level ≥ 8), so proofs take O(log n) lookups.

    Leaves [position·2^level, (position+1)·2^level); written in the append's transaction when the
    subtree completes. A cache only: `verify` recomputes and compares every row.
    """

    __tablename__ = "audit_subtrees"

    level: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    position: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(64))


class AuditCheckpointRow(Base):
    """A checkpoint the log signed (C2SP signed note), kept so later ones stay consistent."""

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    size: Mapped[int] = mapped_column(Integer, index=True)
    root_hash: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AuditCosignatureRow(Base):
    """A witness's cosignature (c2sp.org/tlog-cosignature) of a checkpoint, verified on receipt.

    `note` is the checkpoint exactly as the witness cosigned it (text and the log's signature),
    so the evidence stands even if the checkpoint's own row is later rewritten; `audit verify`
    re-verifies every row with the witness keys from the configuration.
    """

    __tablename__ = "audit_cosignatures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    witness_key: Mapped[str] = mapped_column(String(256), index=True)
    size: Mapped[int] = mapped_column(Integer)
    root_hash: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(Text)
    cosignature: Mapped[str] = mapped_column(Text)
    cosigned_at: Mapped[int] = mapped_column(Integer)
    """The witness's timestamp, unix seconds."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
