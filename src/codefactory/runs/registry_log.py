"""Changing the engine registry is an audit event.

At start the factory compares the registry file with the snapshot the audit log last
recorded (`engine-registry-loaded`); when they differ it appends `engine-registry-changed`
(which entries were added, removed or changed, and which fields) and the new snapshot, in one
transaction. The log alone then shows which engines were cleared, and on what terms, when.
"""

from __future__ import annotations

from codefactory.audit.port import AuditLog
from codefactory.engines.registry import EngineRegistry
from codefactory.engines.registry_audit import REGISTRY_CHANGED, REGISTRY_LOADED, registry_update
from codefactory.store.runs import RunStore


def record_registry(store: RunStore, audit: AuditLog, registry: EngineRegistry) -> bool:
    """Record the registry if it changed since the last snapshot; True when it did.
    A last snapshot this code cannot read counts as none (every entry recorded as added)."""
    last = audit.latest(REGISTRY_LOADED)
    try:
        update = registry_update(last.data if last is not None else None, registry)
    except ValueError:
        update = registry_update(None, registry)
    if update is None:
        return False
    with store.atomic() as tx:
        tx.audit(REGISTRY_CHANGED, actor="registry", **update.changed_data())
        tx.audit(REGISTRY_LOADED, actor="registry", **update.loaded)
    return True
