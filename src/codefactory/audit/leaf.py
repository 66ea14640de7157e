"""An audit event as a Merkle leaf: its record, the record's canonical bytes, its leaf hash.

A leaf is the RFC 8785 canonical JSON of `{"actor", "at", "data", "name", "run_id", "seq"}`,
`seq` being the leaf's index in the tree (0-based, RFC 9162 §2.1). Carrying the index makes
each leaf self-locating: a row that was moved, renumbered or inserted no longer hashes to the
leaf hash stored beside it, which is what lets `verify` name the first bad index.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import count
from typing import Any

from codefactory.audit.canonical import (
    all_canonical_objects,
    canonical_json,
    is_canonical,
    is_canonical_object,
    json_string,
)
from codefactory.audit.merkle import hash_leaf
from codefactory.domain import AuditEvent

LeafColumns = tuple[int, str, str, str, str, str, str]
"""A stored row as the store returns it: `(seq, name, actor, run_id, at, data, leaf_hash)`."""

# Characters a JSON string escapes (RFC 8785 §3.2.2.2); columns without them are written as is.
_ESCAPED = re.compile(r'[\x00-\x1f"\\]')
_sha256 = hashlib.sha256


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

    @classmethod
    def from_columns(cls, row: LeafColumns) -> StoredLeaf:
        """The leaf of a stored row."""
        seq, name, actor, run_id, at, data, leaf_hash = row
        return cls(
            seq=seq, name=name, actor=actor, run_id=run_id, at=at, data=data, leaf_hash=leaf_hash
        )

    def columns(self) -> LeafColumns:
        """The row as the store holds it (see `LeafColumns`)."""
        return (self.seq, self.name, self.actor, self.run_id, self.at, self.data, self.leaf_hash)

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
        row = self.columns()
        digest = recompute_leaf_hash(row, CanonicalData(), row[0] if seq is None else seq)
        return None if digest is None else digest.hex()

    def record(self) -> dict[str, Any]:
        """The leaf record as data (the columns, with `data` parsed)."""
        record: dict[str, Any] = json.loads(self.leaf_bytes())
        return record


REMEMBERED_CHARS = 1024
"""Data texts longer than this are checked each time, not remembered: the memory stays
bounded by `limit` × this, whatever the rows carry."""


class CanonicalData:
    """Whether a data column is a canonical JSON object, remembered by its text.

    Logs repeat the same data often (state changes, refusals), and the answer depends on the
    text alone, so a caller checking many rows one by one (`recompute_leaf_hash`) asks
    `is_canonical` once per distinct text. At most `limit` texts are remembered; beyond that
    the memory starts again (constant memory). `audit verify` checks a batch's texts together
    instead (`matching_leaf_hashes`).
    """

    def __init__(self, limit: int = 1 << 16) -> None:
        self._known: dict[str, bool] = {}
        self._limit = limit

    def __call__(self, data: str) -> bool:
        known = self._known.get(data)
        if known is None:
            known = is_canonical_object(data)
            if isinstance(data, str) and len(data) <= REMEMBERED_CHARS:
                if len(self._known) >= self._limit:
                    self._known.clear()
                self._known[data] = known
        return known


def recompute_leaf_hash(
    row: LeafColumns, canonical: Callable[[str], bool], seq: int
) -> bytes | None:
    """The leaf hash (RFC 9162 §2.1.1, 32 bytes) of the row's columns at index `seq`, or None
    if its data is not a canonical JSON object or a column cannot be encoded as UTF-8.

    `canonical` answers whether a data text is a canonical JSON object (`is_canonical_object`,
    or a `CanonicalData` that remembers). Columns that need no JSON escaping are written
    straight into the leaf, the rest through `json_string`; same bytes as `leaf_bytes`.
    """
    _, name, actor, run_id, at, data, _ = row
    if not all(isinstance(column, str) for column in (name, actor, run_id, at)):
        return None  # a column stored as something other than text (a BLOB): unreadable
    if not canonical(data):
        return None
    try:
        if _ESCAPED.search(actor + at + name + run_id) is None:
            text = (
                f'{{"actor":"{actor}","at":"{at}","data":{data},'
                f'"name":"{name}","run_id":"{run_id}","seq":{seq}}}'
            )
            encoded = text.encode()
        else:
            encoded = leaf_bytes(seq=seq, name=name, actor=actor, run_id=run_id, at=at, data=data)
        return _sha256(b"\x00" + encoded).digest()
    except ValueError:  # a lone surrogate: no UTF-8 form
        return None


def matching_leaf_hashes(rows: Sequence[LeafColumns], first: int) -> list[bytes]:
    """The leaf hashes (RFC 9162 §2.1.1, 32 bytes each) of the leading `rows`, placed at
    indexes `first`, `first + 1`, ...: as many as there are rows, in order, before the first
    that is not the leaf it claims to be (its seq is not its index, its columns cannot be read,
    or they hash to another leaf hash than the one stored beside them).

    The hot loop of `audit verify`, one call per batch. The batch is checked column by column
    first: its seqs, whether its name, actor, run_id and at texts hold any character JSON
    escapes, and its distinct data texts together (`all_canonical_objects`). A batch that
    passes (the common case) has each leaf written straight from its columns; any other goes
    row by row, through `recompute_leaf_hash` where a row needs it. The bytes are those of
    `leaf_bytes` either way.
    """
    try:
        seqs, names, actors, run_ids, ats, datas, stored = zip(*rows, strict=True)
    except ValueError:  # no rows, or rows of another shape: row by row
        return _checked_leaf_hashes(rows, first, CanonicalData())
    canonical = _canonical_data(datas)
    if (
        canonical is None
        and seqs == tuple(range(first, first + len(rows)))
        and _need_no_escapes(names, actors, run_ids, ats)
    ):
        plain = _plain_leaf_hashes(names, actors, run_ids, ats, datas, stored, first)
        if plain is not None:
            return plain
    return _checked_leaf_hashes(rows, first, canonical or CanonicalData())


def _need_no_escapes(*columns: Sequence[str]) -> bool:
    """Whether every value of `columns` is text without a character JSON escapes (RFC 8785
    §3.2.2.2: control characters, which are not printable, the quote and the backslash)."""
    try:
        text = "".join("".join(column) for column in columns)
    except TypeError:  # a column stored as something other than text
        return False
    return text.isprintable() and '"' not in text and "\\" not in text


def _plain_leaf_hashes(
    names: Sequence[str],
    actors: Sequence[str],
    run_ids: Sequence[str],
    ats: Sequence[str],
    datas: Sequence[str],
    stored: Sequence[str],
    first: int,
) -> list[bytes] | None:
    """`matching_leaf_hashes` of rows whose columns need no JSON escaping, whose data texts
    are canonical JSON objects and whose seqs run from `first`; None if a leaf has no UTF-8
    form (a lone surrogate in its data: ask row by row)."""
    try:
        hashes = [
            _sha256(
                f'\x00{{"actor":"{actor}","at":"{at}","data":{data},'
                f'"name":"{name}","run_id":"{run_id}","seq":{seq}}}'.encode()
            ).digest()
            for seq, name, actor, run_id, at, data in zip(
                count(first), names, actors, run_ids, ats, datas
            )
        ]
    except UnicodeEncodeError:
        return None
    try:
        # When every stored hash is text 64 characters long, the joined texts are equal only
        # if each stored hash is its leaf's.
        if set(map(len, stored)) == {64} and b"".join(hashes).hex() == "".join(stored):
            return hashes
    except TypeError:  # a leaf hash stored as something other than text
        pass
    good = 0
    while good < len(hashes) and hashes[good].hex() == stored[good]:
        good += 1
    return hashes[:good]


def _checked_leaf_hashes(
    rows: Sequence[LeafColumns], first: int, canonical: Callable[[str], bool]
) -> list[bytes]:
    """`matching_leaf_hashes` row by row; `canonical` answers for each data text."""
    hashes: list[bytes] = []
    position = first
    for row in rows:
        if row[0] != position:
            break
        leaf_hash = recompute_leaf_hash(row, canonical, position)
        if leaf_hash is None or leaf_hash.hex() != row[6]:
            break
        hashes.append(leaf_hash)
        position += 1
    return hashes


def _canonical_data(texts: Sequence[str]) -> Callable[[str], bool] | None:
    """Whether each of `texts` is a canonical JSON object: None if all are, else the answer
    for each distinct text (a batch repeats the same data often)."""
    try:
        distinct = list(dict.fromkeys(texts))
    except TypeError:  # a column no dict can hold: never a canonical object
        return is_canonical_object
    if all_canonical_objects(distinct):
        return None
    return {text: is_canonical_object(text) for text in distinct}.__getitem__


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
