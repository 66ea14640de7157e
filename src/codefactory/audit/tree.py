"""The tree over the stored leaves: perfect-subtree hashes from the cache or from leaf hashes.

Subtrees of 2^8 leaves and more are written to `audit_subtrees` in the transaction of the
append that completes them (one row per 128 appends, amortized), so any root or proof needs
O(log n) cache lookups plus at most a few hundred leaf hashes: a proof over a million
events takes milliseconds, not a scan.
"""

from __future__ import annotations

from sqlalchemy import Connection, insert, select

from codefactory.audit.errors import ProofInvalid
from codefactory.audit.merkle import hash_children, root_of
from codefactory.audit.verify import CACHE_LEVEL
from codefactory.store.identity_tables import AuditSubtreeRow
from codefactory.store.models import AuditEventRow


class StoredTree:
    """A `SubtreeSource` reading the store (within the caller's transaction)."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def perfect(self, level: int, position: int) -> bytes:
        """MTH of leaves [position·2^level, (position+1)·2^level)."""
        if level >= CACHE_LEVEL:
            cached = self._connection.execute(
                select(AuditSubtreeRow.hash).where(
                    AuditSubtreeRow.level == level, AuditSubtreeRow.position == position
                )
            ).scalar()
            if cached is None:
                raise ProofInvalid(f"no cached subtree at level {level}, position {position}")
            return bytes.fromhex(cached)
        start = position << level
        leaves = self.leaf_hashes(start, start + (1 << level))
        if len(leaves) != 1 << level:
            raise ProofInvalid(f"leaves {start}..{start + (1 << level) - 1} are not all stored")
        return root_of(leaves)

    def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        """The stored leaf hashes of indexes [start, end)."""
        rows = self._connection.execute(
            select(AuditEventRow.leaf_hash)
            .where(AuditEventRow.seq >= start, AuditEventRow.seq < end)
            .order_by(AuditEventRow.seq)
        )
        return [bytes.fromhex(value) for (value,) in rows]


def cache_completed_subtrees(connection: Connection, seq: int) -> None:
    """After appending leaf `seq`, cache every subtree of level ≥ 8 it completes."""
    size = seq + 1
    if size % (1 << CACHE_LEVEL):
        return
    tree = StoredTree(connection)
    position = size >> CACHE_LEVEL
    node = root_of(tree.leaf_hashes(size - (1 << CACHE_LEVEL), size))
    level = CACHE_LEVEL
    while True:
        connection.execute(
            insert(AuditSubtreeRow), {"level": level, "position": position - 1, "hash": node.hex()}
        )
        if position & 1:  # a left child: its parent is not complete yet
            break
        node = hash_children(tree.perfect(level, position - 2), node)
        level, position = level + 1, position >> 1
