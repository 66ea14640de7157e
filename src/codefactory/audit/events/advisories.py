"""The typed audit events of the offline advisory database (`codefactory advisories`).

Field names and values are those of the leaves written before the events were typed: the
reports' own fields (`advisories.sync.SyncReport`, `advisories.importer.ImportReport`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from codefactory.domain import AuditEvent


@dataclass(frozen=True, kw_only=True)
class AdvisoriesSynced(AuditEvent):
    """OSV data was downloaded and indexed (`took_s` in seconds; per ecosystem its
    records and archive size)."""

    NAME: ClassVar[str] = "advisories-synced"
    source: str
    ecosystems: dict[str, Any]
    archive_bytes: dict[str, int]
    digest: str
    index: str
    synced_at: str
    took_s: float


@dataclass(frozen=True, kw_only=True)
class AdvisoriesImported(AuditEvent):
    """An OSV archive or folder was imported and indexed."""

    NAME: ClassVar[str] = "advisories-imported"
    source: str
    records: int
    pypi_records: int
    withdrawn: int
    digest: str
    index: str
    imported_at: str
    npm_records: int = 0
    other_ecosystems: int = 0
    skipped: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class AdvisoriesSyncFailed(AuditEvent):
    """Downloading or indexing OSV data failed; the previous data stays in force."""

    NAME: ClassVar[str] = "advisories-sync-failed"
    source: str
    reason: str
