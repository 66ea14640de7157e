"""Tables of webhook deliveries (the durable intake queue) and of trigger details (issue 5)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from codefactory.store.models import Base


class DeliveryRow(Base):
    """One authenticated delivery, stored before the sender is answered; a run's queue entry.

    `status`: `received` (stored, not yet decided), `queued` (waiting for a worker: with
    its run authorized, or, with no run yet, to be decided by the worker), `running`, `done`,
    `refused` (policy, sponsor or an unknown repository), `ignored`. `trigger` holds the
    parsed trigger (`store.deliveries.trigger_document`) of a delivery stored before its
    decision, until the decision creates its run.
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("source", "delivery_id", name="uq_deliveries_source_id"),
        # One delivery per source and body, whichever process stores it (migration 0012).
        Index("ix_deliveries_source_digest", "source", "payload_digest", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(32))
    delivery_id: Mapped[str] = mapped_column(String(256))
    event: Mapped[str] = mapped_column(String(128), default="")
    status: Mapped[str] = mapped_column(String(16), index=True)
    run_id: Mapped[str | None] = mapped_column(ForeignKey("runs.id"), nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    payload_digest: Mapped[str] = mapped_column(String(80))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    trigger: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True, default=None)


class TriggerDetailRow(Base):
    """What a webhook trigger carries beyond the skeleton's `triggers` row."""

    __tablename__ = "trigger_details"

    trigger_id: Mapped[str] = mapped_column(ForeignKey("triggers.id"), primary_key=True)
    delivery_id: Mapped[str] = mapped_column(String(256), default="")
    event: Mapped[str] = mapped_column(String(128), default="")
    autonomous: Mapped[bool] = mapped_column(Boolean, default=False)
    links: Mapped[list[str]] = mapped_column(JSON)
    attributes: Mapped[dict[str, str]] = mapped_column(JSON)
    sender_kind: Mapped[str] = mapped_column(String(32), default="", server_default="")
    sender: Mapped[str] = mapped_column(String(256), default="", server_default="")
    caused_by: Mapped[str] = mapped_column(String(256), default="", server_default="")
