"""An audit event as a Merkle leaf: its record, the record's canonical bytes, its leaf hash.

A leaf is the RFC 8785 canonical JSON of `{"actor", "at", "data", "name", "run_id", "seq"}`,
`seq` being the leaf's index in the tree (0-based, RFC 9162 §2.1). Carrying the index makes
each leaf self-locating: a row that was moved, renumbered or inserted no longer hashes to the
leaf hash stored beside it, which is what lets `verify` name the first bad index.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from codefactory.audit.canonical import canonical_json, is_canonical, json_string
from codefactory.audit.merkle import hash_leaf
from codefactory.domain import AuditEvent


def format_at(at: datetime) -> str:
    """`at` in UTC as ISO 8601 with microseconds, e.g. `2025-01-31T09:30:00.000000Z`."""
    if at.utcoffset() is None:
        raise ValueError(f"time {at.isoformat()} has no time zone; record aware UTC times")
    utc = at.astimezone(UTC).replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds") + "Z"


def leaf_record(seq: int, event: AuditEvent) -> dict[str, Any]:
    """The JSON object the tree hashes for `event` at index `seq`."""
    return {
        "seq": seq,
        "name": event.name,
        "actor": event.actor,
        "run_id": event.run_id,
        "at": format_at(event.at),
        "data": event.data,
    }


@dataclass(frozen=True, kw_only=True)
class StoredLeaf:
    """One stored row of the log: the event's columns and the leaf hash kept beside them."""

    seq: int
    name: str
    actor: str
    run_id: str
    at: str
    data: str
    """The event's data as canonical JSON text."""
    leaf_hash: str
    """Hex SHA-256 of `0x00 || leaf bytes` (RFC 9162 §2.1.1), written at append time."""

    def leaf_bytes(self, seq: int | None = None) -> bytes:
        """The canonical leaf the columns describe (at index `seq` if given); ValueError if
        the data is not canonical JSON or a column cannot be encoded."""
        if not is_canonical(self.data) or not self.data.startswith("{"):
            raise ValueError("its data is not a canonical JSON object")
        return leaf_bytes(
            seq=self.seq if seq is None else seq,
            name=self.name,
            actor=self.actor,
            run_id=self.run_id,
            at=self.at,
            data=self.data,
        )

    def recomputed_hash(self, seq: int | None = None) -> str | None:
        """Hex leaf hash of the columns (at index `seq`), or None if they are unreadable."""
        try:
            return hash_leaf(self.leaf_bytes(seq)).hex()
        except ValueError:
            return None

    def record(self) -> dict[str, Any]:
        """The leaf record as data (the columns, with `data` parsed)."""
        record: dict[str, Any] = json.loads(self.leaf_bytes())
        return record


def leaf_bytes(*, seq: int, name: str, actor: str, run_id: str, at: str, data: str) -> bytes:
    """The canonical JSON of a leaf record whose `data` is already canonical JSON text.

    Equal to `canonical_json(leaf_record(...))`: the members are written in RFC 8785 order
    (actor, at, data, name, run_id, seq), so no re-encoding of the data is needed.
    """
    return (
        f'{{"actor":{json_string(actor)},"at":{json_string(at)},"data":{data},'
        f'"name":{json_string(name)},"run_id":{json_string(run_id)},"seq":{seq}}}'
    ).encode()


@dataclass(frozen=True, kw_only=True)
class EncodedEvent:
    """An event's columns, encoded once; `leaf(seq)` places it at an index."""

    name: str
    actor: str
    run_id: str
    at: str
    data: str

    def leaf(self, seq: int) -> StoredLeaf:
        encoded = leaf_bytes(
            seq=seq,
            name=self.name,
            actor=self.actor,
            run_id=self.run_id,
            at=self.at,
            data=self.data,
        )
        return StoredLeaf(
            seq=seq,
            name=self.name,
            actor=self.actor,
            run_id=self.run_id,
            at=self.at,
            data=self.data,
            leaf_hash=hash_leaf(encoded).hex(),
        )


def encode_event(event: AuditEvent) -> EncodedEvent:
    """The event's columns in stored form; ValueError/TypeError if it has none (NaN, a set,
    a naive time, a lone surrogate)."""
    encoded = EncodedEvent(
        name=event.name,
        actor=event.actor,
        run_id=event.run_id,
        at=format_at(event.at),
        data=canonical_json(event.data).decode("utf-8"),
    )
    encoded.leaf(0)  # every column must encode as UTF-8
    return encoded


def stored_leaf(seq: int, event: AuditEvent) -> StoredLeaf:
    """The row that records `event` at index `seq`; ValueError/TypeError if unencodable."""
    return encode_event(event).leaf(seq)
