"""Tables of operating the factory at scale (issue 15): run leases and the halt switch."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from codefactory.store.models import Base


class RunLeaseRow(Base):
    """Which worker owns a non-terminal run, until when.

    `owner` names the worker process (`host:pid:nonce`); `fence` grows by one at every
    acquisition, so a worker that lost its lease can tell (its fence is no longer the row's).
    `expires_at` is the last heartbeat plus the lease's length; past it, another worker may
    take the run over.
    """

    __tablename__ = "run_leases"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    owner: Mapped[str] = mapped_column(String(256))
    fence: Mapped[int] = mapped_column(Integer)
    acquired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    takeovers: Mapped[int] = mapped_column(Integer, default=0)


class HaltRow(Base):
    """An organisation-wide halt (`codefactory halt`): while a row has no `lifted_at`, no
    engine phase runs and no new run starts."""

    __tablename__ = "halts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    reason: Mapped[str] = mapped_column(Text)
    raised_by: Mapped[str] = mapped_column(String(256))
    raised_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    lifted_by: Mapped[str | None] = mapped_column(String(256), nullable=True)
    lifted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    lift_reason: Mapped[str] = mapped_column(Text, default="")
