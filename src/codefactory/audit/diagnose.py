"""Find the first stored row that is not the leaf it claims to be, and say what happened to it.

Each row keeps its leaf hash, and each leaf carries its own index, so a row that was edited,
removed (with or without renumbering the rest), inserted or moved stops matching: the first
such row is the first bad index. Rows stream in index order, with one row of look-ahead, so
a million-event log is checked in constant memory. Rewriting rows *and* their leaf hashes
consistently is caught one level up, by the signed checkpoints (`verify.py`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice

from codefactory.audit.leaf import LeafColumns, StoredLeaf, matching_leaf_hashes


@dataclass(frozen=True, kw_only=True)
class Problem:
    """The first bad index, the event name found there (None if missing), and why."""

    index: int
    name: str | None
    reason: str


def first_bad_row(
    rows: Iterable[StoredLeaf], *, size: int, on_leaf: Callable[[bytes], None]
) -> tuple[int, Problem | None]:
    """Check rows (in seq order) against their leaf hashes; feeds each good leaf hash on.

    `size` is how many rows the table holds, the range searched for a moved row's true place.
    Returns the number of good rows and the first problem, if any.
    """
    return first_bad_columns((row.columns() for row in rows), size=size, on_leaf=on_leaf)


def first_bad_columns(
    rows: Iterable[LeafColumns], *, size: int, on_leaf: Callable[[bytes], None]
) -> tuple[int, Problem | None]:
    """`first_bad_row` over rows as the store returns them (`LeafColumns`), building no
    object per row."""

    def on_leaves(leaf_hashes: Sequence[bytes]) -> None:
        for leaf_hash in leaf_hashes:
            on_leaf(leaf_hash)

    return first_bad_batches(batched(rows), size=size, on_leaves=on_leaves)


def first_bad_batches(
    batches: Iterable[Sequence[LeafColumns]],
    *,
    size: int,
    on_leaves: Callable[[Sequence[bytes]], None],
) -> tuple[int, Problem | None]:
    """`first_bad_columns` over the rows in batches (seq order), feeding on the good leaf
    hashes of each batch in one call: the pass `audit verify` makes over every row."""
    iterator = iter(batches)
    previous: LeafColumns | None = None
    position = 0
    for batch in iterator:
        good = matching_leaf_hashes(batch, position)
        on_leaves(good)
        position += len(good)
        if len(good) < len(batch):
            bad = batch[len(good)]
            if good:
                previous = batch[len(good) - 1]
            following = _following(batch, len(good), iterator)
            return position, _problem(bad, position, previous, following, size)
        if batch:
            previous = batch[-1]
    return position, None


def batched(rows: Iterable[LeafColumns], size: int = 4096) -> Iterator[list[LeafColumns]]:
    """`rows` in lists of up to `size` (the last may be shorter), in order."""
    iterator = iter(rows)
    while batch := list(islice(iterator, size)):
        yield batch


def _following(
    batch: Sequence[LeafColumns], index: int, batches: Iterator[Sequence[LeafColumns]]
) -> LeafColumns | None:
    """The row after `batch[index]`: in the batch, else the first of the next non-empty one."""
    if index + 1 < len(batch):
        return batch[index + 1]
    return next((later[0] for later in batches if later), None)


def _problem(
    row: LeafColumns,
    position: int,
    previous: LeafColumns | None,
    following: LeafColumns | None,
    size: int,
) -> Problem:
    """What is wrong with `row`, found at index `position`: the first row that is not the
    leaf it claims to be (`previous` and `following` are its neighbours, if any)."""
    leaf = StoredLeaf.from_columns(row)
    if row[0] != position:
        return _seq_break(leaf, position)
    return _diagnose(
        leaf,
        None if previous is None else StoredLeaf.from_columns(previous),
        None if following is None else StoredLeaf.from_columns(following),
        size,
    )


def _seq_break(row: StoredLeaf, expected: int) -> Problem:
    if row.seq > expected:
        return Problem(index=expected, name=None, reason=f"event {expected} is missing (removed)")
    return Problem(
        index=row.seq, name=row.name, reason=f"events out of order at {row.seq} (seq repeated)"
    )


def _diagnose(
    row: StoredLeaf, previous: StoredLeaf | None, following: StoredLeaf | None, size: int
) -> Problem:
    """Why `row` does not match its leaf hash, all rows before it being good."""
    seq, stored = row.seq, row.leaf_hash
    shifted_down = row.recomputed_hash(seq + 1) == stored
    if shifted_down and (
        following is None or following.recomputed_hash(seq + 2) == following.leaf_hash
    ):
        reason = f"event {seq} is missing (removed, later events renumbered)"
        return Problem(index=seq, name=None, reason=reason)
    if previous is not None and row.recomputed_hash(seq - 1) == stored:
        # This row belongs one place earlier: the good-looking row before it was forged.
        reason = f"event {previous.seq} ({previous.name}) was inserted"
        return Problem(index=previous.seq, name=previous.name, reason=reason)
    if shifted_down or _belongs_elsewhere(row, size):
        return Problem(index=seq, name=row.name, reason=f"events out of order at {seq}")
    if following is not None and following.recomputed_hash(seq) == following.leaf_hash:
        return Problem(index=seq, name=row.name, reason=f"event {seq} ({row.name}) was inserted")
    return Problem(index=seq, name=row.name, reason=f"event {seq} ({row.name}) was altered")


def _belongs_elsewhere(row: StoredLeaf, size: int) -> bool:
    """Whether the row's content is the leaf of another index (it was moved there)."""
    try:
        prefix = b"\x00" + row.leaf_bytes(0)[: -len(b"0}")]
    except (ValueError, TypeError, RecursionError):  # unreadable columns belong nowhere
        return False
    stored = row.leaf_hash
    return any(
        hashlib.sha256(prefix + b"%d}" % other).hexdigest() == stored
        for other in range(size + 1)
        if other != row.seq
    )
