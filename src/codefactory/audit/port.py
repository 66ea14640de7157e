"""The audit log port: one `append(event)` in, records and a verification report out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session

from codefactory.audit.chain import ChainReport
from codefactory.domain import AuditEvent


@dataclass(frozen=True, kw_only=True)
class AuditRecord:
    """An event as the log holds it: its place in the chain and the link hash over it."""

    seq: int
    name: str
    actor: str
    run_id: str
    at: datetime
    data: dict[str, Any]
    hash: str


class AuditLog(Protocol):
    """An append-only, tamper-evident log of audit events."""

    def append(self, event: AuditEvent, *, session: Session | None = None) -> int:
        """Record `event` and return its seq; with `session`, inside that session's transaction."""
        ...

    def verify(self) -> ChainReport:
        """Recompute the whole chain and name the first event that does not fit."""
        ...

    def events(self, run_id: str | None = None) -> list[AuditRecord]:
        """The recorded events in seq order, optionally only those of one run."""
        ...
