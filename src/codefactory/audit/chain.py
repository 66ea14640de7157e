"""The hash chain under the audit log: leaf encoding, link hashes and verification.

Each event becomes a leaf record (a JSON object) encoded as canonical JSON in the style of
RFC 8785. Link `seq` stores `hash = SHA-256(bytes(prev_hash) || canonical_json(record))`, with
64 hex zeros before the first event. The leaf encoding is the one the RFC 6962 Merkle log of a
later issue hashes, so the same rows feed both.

What a chain alone cannot show, and what covers it:
- truncation: deleting the newest events leaves a shorter chain that verifies;
- a complete rewrite: the hash is keyless, so whoever can write the table can recompute every
  link after a forged, removed or reordered event.
Signed checkpoints (tree size and root, kept outside the table) of the Merkle log cover both;
until then `ChainReport.head_hash` and `count` can be compared with a copy kept elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from codefactory.domain import AuditEvent

GENESIS_HASH = "0" * 64


def canonical_json(obj: Any) -> bytes:
    """`obj` as RFC 8785-style canonical JSON: sorted keys, no whitespace, UTF-8.

    Raises ValueError for NaN, infinities and lone surrogates, TypeError for values JSON has
    no form for (sets, datetimes, non-string keys). Integers are written exactly; keep them
    within ±2**53 so that verifiers in other languages read the same number.
    """
    return _encode(obj).encode("utf-8")


def _encode(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, Mapping):
        return _object(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(_encode(item) for item in value) + "]"
    raise TypeError(f"{type(value).__name__} has no JSON form; convert it before recording")


def _object(mapping: Mapping[Any, Any]) -> str:
    for key in mapping:
        if not isinstance(key, str):
            raise TypeError(f"JSON object keys must be strings, not {type(key).__name__}")
    # RFC 8785 §3.2.3: members sorted by the UTF-16 code units of their names.
    keys = sorted(mapping, key=lambda key: key.encode("utf-16-be"))
    return "{" + ",".join(_encode(key) + ":" + _encode(mapping[key]) for key in keys) + "}"


def _number(value: float) -> str:
    """A finite float as ECMAScript's Number.prototype.toString writes it (RFC 8785 §3.2.2.3)."""
    if not math.isfinite(value):
        raise ValueError(f"{value!r} is not a JSON number")
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    # repr() gives the shortest digits that round-trip; Decimal splits them from the exponent.
    parts = Decimal(repr(abs(value))).normalize().as_tuple()
    digits = "".join(str(digit) for digit in parts.digits)
    assert isinstance(parts.exponent, int)
    k, n = len(digits), parts.exponent + len(digits)
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * -n + digits
    mantissa = digits[0] + ("." + digits[1:] if k > 1 else "")
    return f"{sign}{mantissa}e{'+' if n > 0 else '-'}{abs(n - 1)}"


def format_at(at: datetime) -> str:
    """`at` in UTC as ISO 8601 with microseconds, e.g. `2025-01-31T09:30:00.000000Z`."""
    if at.utcoffset() is None:
        raise ValueError(f"time {at.isoformat()} has no time zone; record aware UTC times")
    utc = at.astimezone(UTC).replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds") + "Z"


def leaf_record(seq: int, event: AuditEvent) -> dict[str, Any]:
    """The JSON object the chain (and later the Merkle tree) hashes for `event` at `seq`."""
    return {
        "seq": seq,
        "name": event.name,
        "actor": event.actor,
        "run_id": event.run_id,
        "at": format_at(event.at),
        "data": event.data,
    }


def link_hash(prev_hash: str, record: Mapping[str, Any]) -> str:
    """Hex SHA-256 of the previous link's 32 hash bytes followed by the canonical record."""
    prev = bytes.fromhex(prev_hash)
    if len(prev) != 32:
        raise ValueError(f"a link hash is 32 bytes, got {len(prev)}")
    return hashlib.sha256(prev + canonical_json(record)).hexdigest()


@dataclass(frozen=True, kw_only=True)
class Link:
    """One stored link of the chain: the columns of an audit row."""

    seq: int
    name: str
    actor: str
    run_id: str
    at: str
    data: str
    prev_hash: str
    hash: str


def chain_link(seq: int, event: AuditEvent, prev_hash: str) -> Link:
    """The link that records `event` at `seq` after the link whose hash is `prev_hash`."""
    record = leaf_record(seq, event)
    return Link(
        seq=seq,
        name=event.name,
        actor=event.actor,
        run_id=event.run_id,
        at=record["at"],
        data=canonical_json(event.data).decode("utf-8"),
        prev_hash=prev_hash,
        hash=link_hash(prev_hash, record),
    )


def stored_record(link: Link) -> dict[str, Any]:
    """The leaf record a stored link claims; ValueError if its data is not canonical JSON."""
    data = json.loads(link.data, parse_constant=_reject_constant)
    if canonical_json(data).decode("utf-8") != link.data:
        raise ValueError(f"data of event {link.seq} is not in canonical form")
    return {
        "seq": link.seq,
        "name": link.name,
        "actor": link.actor,
        "run_id": link.run_id,
        "at": link.at,
        "data": data,
    }


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


@dataclass(frozen=True, kw_only=True)
class ChainReport:
    """The outcome of verifying a chain: ok, or the first bad event and what happened to it."""

    ok: bool
    count: int
    first_bad_seq: int | None = None
    first_bad_name: str | None = None
    reason: str = ""
    head_hash: str = ""


def verify_chain(links: Iterable[Link]) -> ChainReport:
    """Recompute every link from the genesis hash; report the first event that does not fit.

    Names what most likely happened at the first bad event: altered (a column edited),
    missing (a gap in seq, or removed and the rest renumbered), inserted, or out of order.
    """
    rows = sorted(links, key=lambda link: link.seq)
    prev = GENESIS_HASH
    for index, row in enumerate(rows):
        if row.seq != index + 1:
            return _seq_break(rows, row, index + 1)
        if row.prev_hash != prev or _recomputed(prev, row) != row.hash:
            return _diagnose(rows, index, prev)
        prev = row.hash
    count = len(rows)
    return ChainReport(ok=True, count=count, reason=f"{count} events verify", head_hash=prev)


def _recomputed(prev_hash: str, link: Link, *, seq: int | None = None) -> str | None:
    try:
        record = stored_record(link)
        if seq is not None:
            record["seq"] = seq
        return link_hash(prev_hash, record)
    except ValueError:
        return None


def _bad(rows: list[Link], seq: int, name: str | None, reason: str) -> ChainReport:
    return ChainReport(
        ok=False, count=len(rows), first_bad_seq=seq, first_bad_name=name, reason=reason
    )


def _seq_break(rows: list[Link], row: Link, expected: int) -> ChainReport:
    if row.seq > expected:
        return _bad(rows, expected, None, f"event {expected} is missing (removed)")
    return _bad(rows, row.seq, row.name, f"events out of order at {row.seq} (seq repeated)")


def _diagnose(rows: list[Link], index: int, prev: str) -> ChainReport:
    """Why `rows[index]` does not follow `prev`, the hash of the verified row before it."""
    row = rows[index]
    positions = {link.hash: position for position, link in enumerate(rows)}
    positions[GENESIS_HASH] = -1
    points_to = positions.get(row.prev_hash)
    if points_to is not None and points_to > index:
        return _bad(rows, row.seq, row.name, f"events out of order at {row.seq}")
    if points_to is not None and points_to < index - 1:
        # The rows in between verify but the original chain skips them: they were forged.
        forged = rows[points_to + 1]
        reason = f"event {forged.seq} ({forged.name}) was inserted"
        return _bad(rows, forged.seq, forged.name, reason)
    if any(later.prev_hash == prev for later in rows[index + 1 :]):
        return _bad(rows, row.seq, row.name, f"event {row.seq} ({row.name}) was inserted")
    if _recomputed(row.prev_hash, row, seq=row.seq + 1) == row.hash:
        reason = f"event {row.seq} is missing (removed, later events renumbered)"
        return _bad(rows, row.seq, None, reason)
    return _bad(rows, row.seq, row.name, f"event {row.seq} ({row.name}) was altered")
