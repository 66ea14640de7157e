"""Changing the engine registry is an audit event: what changed since the last one recorded.

The factory calls `registry_update(last_loaded_data, registry)` at start, with the `data` of
the last `engine-registry-loaded` event in the audit log (None when there is none). When it
returns an update, the factory appends two events in one transaction:

    update = registry_update(previous, registry)
    if update is not None:
        append(AuditEvent(name=REGISTRY_CHANGED, actor=..., data=update.changed_data()))
        append(AuditEvent(name=REGISTRY_LOADED, actor=..., data=update.loaded))

The loaded event's data is a snapshot of the whole registry (every entry in its canonical
form, with digests), so an examiner can tell from the log alone what was cleared when.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from codefactory.engines.registry import EngineRegistry
from codefactory.engines.registry_model import EngineEntry

REGISTRY_LOADED = "engine-registry-loaded"
REGISTRY_CHANGED = "engine-registry-changed"
SNAPSHOT_FORMAT = 1


class ChangeType(enum.StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"


@dataclass(frozen=True, kw_only=True)
class EntryChange:
    """One entry added, removed or changed; `fields` are the dotted names of the fields that
    differ as the file names them (`status`, `budget.requests`, `prices.gpt-5`), sorted;
    empty for an entry added or removed."""

    engine: str
    change: ChangeType
    fields: tuple[str, ...] = ()
    digest: str = ""
    """The entry's digest now; '' when removed."""
    previous_digest: str = ""
    """Its digest in the last recorded snapshot; '' when added."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "change": self.change.value,
            "fields": list(self.fields),
            "digest": self.digest,
            "previous_digest": self.previous_digest,
        }


@dataclass(frozen=True, kw_only=True)
class RegistryUpdate:
    """The registry differs from the last recorded snapshot (or none was recorded)."""

    loaded: dict[str, Any]
    """Data of the new `engine-registry-loaded` event: `registry_snapshot(registry)`."""
    changes: tuple[EntryChange, ...]
    """Sorted by engine name; every entry `added` when nothing was recorded before."""
    previous_digest: str = ""
    """The registry digest last recorded; '' when none was."""

    def changed_data(self) -> dict[str, Any]:
        """Data of the `engine-registry-changed` event: `{"source", "digest",
        "previous_digest", "changes": [EntryChange.as_dict(), ...]}`."""
        return {
            "source": self.loaded["source"],
            "digest": self.loaded["digest"],
            "previous_digest": self.previous_digest,
            "changes": [change.as_dict() for change in self.changes],
        }


def canonical_entry(entry: EngineEntry) -> dict[str, Any]:
    """An entry as JSON values, every field present (defaults included), named as in the file;
    integral floats written as integers so that `600` and `600.0` are the same entry."""
    data: dict[str, Any] = _integral(entry.model_dump(mode="json", by_alias=True))
    return data


def digest(value: Any) -> str:
    """`sha256:<hex>` of `value` as JSON with sorted keys, no whitespace, UTF-8."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def registry_snapshot(registry: EngineRegistry) -> dict[str, Any]:
    """`{"format": 1, "source": PATH, "digest": D, "entries": {NAME: {"digest": D, "entry":
    {...}}}}`. `digest` covers the canonical form of the whole registry (its entries by name:
    order in the file and formatting do not count); each entry's `digest` covers that entry."""
    entries = {entry.name: canonical_entry(entry) for entry in registry}
    ordered = [entries[name] for name in sorted(entries)]
    return {
        "format": SNAPSHOT_FORMAT,
        "source": registry.source,
        "digest": digest({"format": SNAPSHOT_FORMAT, "engines": ordered}),
        "entries": {
            name: {"digest": digest(entries[name]), "entry": entries[name]}
            for name in sorted(entries)
        },
    }


def registry_update(
    previous: Mapping[str, Any] | None, registry: EngineRegistry
) -> RegistryUpdate | None:
    """What changed between the last recorded snapshot (`previous`, the data of the last
    `engine-registry-loaded` event, or None) and `registry`; None when nothing did.

    Raises ValueError when `previous` is not a snapshot `registry_snapshot` wrote.
    """
    current = registry_snapshot(registry)
    if previous is None:
        changes = [
            EntryChange(engine=name, change=ChangeType.ADDED, digest=item["digest"])
            for name, item in current["entries"].items()
        ]
        return RegistryUpdate(loaded=current, changes=tuple(changes))
    before = _read_snapshot(previous)
    if before.digest == current["digest"]:
        return None
    return RegistryUpdate(
        loaded=current,
        changes=tuple(_entry_changes(before.entries, current["entries"])),
        previous_digest=before.digest,
    )


class _RecordedEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    digest: str
    entry: dict[str, Any]


class _RecordedSnapshot(BaseModel):
    model_config = ConfigDict(extra="ignore")
    format: int
    digest: str
    entries: dict[str, _RecordedEntry]


def _read_snapshot(previous: Mapping[str, Any]) -> _RecordedSnapshot:
    try:
        snapshot = _RecordedSnapshot.model_validate(dict(previous))
    except ValidationError as err:
        raise ValueError(
            f"the last {REGISTRY_LOADED} event is not a registry snapshot: {err}"
        ) from err
    if snapshot.format != SNAPSHOT_FORMAT:
        raise ValueError(
            f"the last {REGISTRY_LOADED} event has snapshot format {snapshot.format}; "
            f"this version reads format {SNAPSHOT_FORMAT}"
        )
    return snapshot


def _entry_changes(
    before: Mapping[str, _RecordedEntry], now: Mapping[str, Mapping[str, Any]]
) -> list[EntryChange]:
    changes = []
    for name in sorted(set(before) | set(now)):
        old, new = before.get(name), now.get(name)
        if old is None and new is not None:
            changes.append(EntryChange(engine=name, change=ChangeType.ADDED, digest=new["digest"]))
        elif new is None and old is not None:
            changes.append(
                EntryChange(engine=name, change=ChangeType.REMOVED, previous_digest=old.digest)
            )
        elif old is not None and new is not None and old.digest != new["digest"]:
            fields = tuple(sorted(_differing(old.entry, new["entry"])))
            changes.append(
                EntryChange(
                    engine=name,
                    change=ChangeType.CHANGED,
                    fields=fields,
                    digest=new["digest"],
                    previous_digest=old.digest,
                )
            )
    return changes


def _differing(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    found = []
    for key in set(old) | set(new):
        a, b = old.get(key), new.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            found += _differing(a, b, f"{prefix}{key}.")
        elif a != b:
            found.append(f"{prefix}{key}")
    return found


def _integral(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _integral(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_integral(item) for item in value]
    return value
