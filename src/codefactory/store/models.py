"""Tables: every fact of a run is a row, nothing lives only in memory."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """Declarative base of the factory's schema."""


class TriggerRow(Base):
    __tablename__ = "triggers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    source: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(64))
    external_id: Mapped[str] = mapped_column(String(256))
    actor: Mapped[str] = mapped_column(String(256))
    repository: Mapped[str] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    labels: Mapped[list[str]] = mapped_column(JSON)
    payload_digest: Mapped[str] = mapped_column(String(80))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RunRow(Base):
    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    trigger_id: Mapped[str] = mapped_column(ForeignKey("triggers.id"))
    kind: Mapped[str] = mapped_column(String(64))
    repository: Mapped[str] = mapped_column(Text)
    sponsor: Mapped[str] = mapped_column(String(256))
    agent_id: Mapped[str] = mapped_column(String(256))
    state: Mapped[str] = mapped_column(String(32), index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    base_commit: Mapped[str] = mapped_column(String(64), default="")
    head_commit: Mapped[str] = mapped_column(String(64), default="")
    branch: Mapped[str] = mapped_column(String(128), default="")
    package_dir: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    engine: Mapped[str] = mapped_column(String(128), default="", server_default="")
    repository_path: Mapped[str] = mapped_column(Text, default="", server_default="")


class RunStateRow(Base):
    __tablename__ = "run_states"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    state: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DecisionRow(Base):
    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    stage: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(64))
    allowed: Mapped[bool]
    policy_ids: Mapped[list[str]] = mapped_column(JSON)
    reasons: Mapped[list[str]] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class FindingRow(Base):
    __tablename__ = "findings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    round: Mapped[int]
    check: Mapped[str] = mapped_column(String(64))
    rule: Mapped[str] = mapped_column(String(128))
    severity: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(Text, default="")
    line: Mapped[int] = mapped_column(Integer, default=0)
    message: Mapped[str] = mapped_column(Text)
    blocking: Mapped[bool]


class CheckRunRow(Base):
    __tablename__ = "check_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    round: Mapped[int]
    check: Mapped[str] = mapped_column(String(64))
    passed: Mapped[bool]
    summary: Mapped[str] = mapped_column(Text, default="")


class PackageRow(Base):
    __tablename__ = "packages"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    directory: Mapped[str] = mapped_column(Text)
    branch: Mapped[str] = mapped_column(String(128))
    commit: Mapped[str] = mapped_column(String(64))
    risk_level: Mapped[str] = mapped_column(String(16))
    files: Mapped[list[str]] = mapped_column(JSON)


class ReviewRow(Base):
    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    reviewer: Mapped[str] = mapped_column(String(256))
    approved: Mapped[bool]
    comment: Mapped[str] = mapped_column(Text, default="")
    commit: Mapped[str] = mapped_column(String(64), default="")
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AuditEventRow(Base):
    """One leaf of the Merkle audit log: the event's fields and the leaf hash over them.

    `seq` is the leaf index (0-based, RFC 9162 §2.1); the leaf is the canonical JSON of the
    other columns plus `seq` (`audit/leaf.py`), `leaf_hash` its RFC 9162 leaf hash in hex.
    """

    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(256))
    run_id: Mapped[str] = mapped_column(String(64), default="", index=True)
    at: Mapped[str] = mapped_column(String(40))
    data: Mapped[str] = mapped_column(Text)
    leaf_hash: Mapped[str] = mapped_column(String(64))
