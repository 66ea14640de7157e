"""The audit log as the factory uses it: the store's log, streamed to the SIEM if one is
configured, checkpoints witnessed (and verification saying loudly when nothing witnesses)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from codefactory.audit.port import AuditLog
from codefactory.audit.siem import SiemStream, StreamedAuditLog, stored_drops
from codefactory.audit.sql import SqlAuditLog
from codefactory.audit.sql_cosignatures import SqlCosignatures
from codefactory.audit.witnessing import WitnessedAuditLog
from codefactory.config import Settings


def audit_log(settings: Settings, engine: Engine, sql: SqlAuditLog) -> WitnessedAuditLog:
    """Wrap `sql` per `settings.audit` (docs/witnesses.md)."""
    audit = settings.audit
    log: AuditLog = sql
    stream: SiemStream | None = None
    if audit.siem.target:
        stream = SiemStream(audit.siem, state_dir=settings.data_dir, log_name=sql.origin)
        log = StreamedAuditLog(sql, stream)

    def siem_status() -> dict[str, Any] | None:
        if stream is not None:
            return stream.status()
        dropped = stored_drops(settings.data_dir)
        return {"target": "", "format": "", "dropped": dropped} if dropped else None

    return WitnessedAuditLog(
        log,
        sql=sql,
        cosignatures=SqlCosignatures(engine),
        settings=audit,
        siem_status=siem_status,
    )
