"""Verify a whole log: every row against its leaf hash, the tree against its signed checkpoints.

Two layers of evidence. Rows that were edited, removed, inserted or moved are named by
`diagnose.first_bad_row`. Rows rewritten *together with* their leaf hashes still produce a
tree whose root differs from the signed checkpoints taken earlier: those roots are signed by
the issuer key, which never sits in the database. One pass, constant memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from codefactory.audit.checkpoint import Checkpoint
from codefactory.audit.diagnose import batched, first_bad_batches
from codefactory.audit.leaf import LeafColumns, StoredLeaf
from codefactory.audit.merkle import RootBuilder
from codefactory.audit.port import LogReport

CACHE_LEVEL = 8
"""Perfect subtrees of 2^8 leaves and larger are cached in the store (`audit_subtrees`)."""
# A leaf completes a subtree of 2^CACHE_LEVEL leaves or more only when the tree it joins holds
# a multiple of 2^CACHE_LEVEL leaves minus one: its low CACHE_LEVEL bits are all set.
_BELOW_CACHE = (1 << CACHE_LEVEL) - 1


@dataclass(frozen=True, kw_only=True)
class TrustedCheckpoint:
    """A checkpoint whose signature verified, and how to name it in a report."""

    checkpoint: Checkpoint
    label: str


class _TreeCheck:
    """Follows the recomputed tree leaf by leaf, comparing it with the cache and checkpoints."""

    def __init__(
        self, cached: Mapping[tuple[int, int], str], checkpoints: Sequence[TrustedCheckpoint]
    ) -> None:
        self.builder = RootBuilder()
        self.cached = cached
        self.pending = sorted(checkpoints, key=lambda trusted: trusted.checkpoint.size)
        self.matched_size = 0
        self.checked = 0
        self.rewritten: tuple[int, TrustedCheckpoint] | None = None
        self.bad_cache: tuple[int, int] | None = None
        self._next_size = -1
        """The size of the next checkpoint to compare with (-1: none left)."""
        self._compare()

    def add(self, leaf_hash: bytes) -> None:
        builder = self.builder
        if builder.size & _BELOW_CACHE != _BELOW_CACHE:  # completes no cached subtree
            builder.push(leaf_hash)
        else:
            for level, position, node in builder.append(leaf_hash):
                if level >= CACHE_LEVEL and self.bad_cache is None:
                    if self.cached.get((level, position)) != node.hex():
                        self.bad_cache = (level, position)
        if builder.size == self._next_size:
            self._compare()

    def add_all(self, leaf_hashes: Sequence[bytes]) -> None:
        """`add` each leaf hash in order: runs of leaves that complete no cached subtree and
        reach no checkpoint go to the builder in one call."""
        builder, start, end = self.builder, 0, len(leaf_hashes)
        while start < end:
            size = builder.size
            plain = (_BELOW_CACHE - size) & _BELOW_CACHE  # leaves before one that completes
            if self._next_size >= 0:
                plain = min(plain, self._next_size - size - 1)
            stop = min(start + plain, end)
            builder.extend(leaf_hashes[start:stop])
            if stop < end:
                self.add(leaf_hashes[stop])
            start = stop + 1

    def _compare(self) -> None:
        while self.pending and self.pending[0].checkpoint.size == self.builder.size:
            trusted = self.pending.pop(0)
            self.checked += 1
            if trusted.checkpoint.root == self.builder.root():
                self.matched_size = max(self.matched_size, self.builder.size)
            elif self.rewritten is None:
                self.rewritten = (self.matched_size, trusted)
        self._next_size = self.pending[0].checkpoint.size if self.pending else -1


def verify_log(
    rows: Iterable[StoredLeaf],
    *,
    size: int,
    cached: Mapping[tuple[int, int], str],
    checkpoints: Sequence[TrustedCheckpoint],
    untrusted: Sequence[str] = (),
) -> LogReport:
    """Check rows (in index order) and the tree; `untrusted` names checkpoints whose
    signature failed, reported if nothing worse is found."""
    return verify_columns(
        (row.columns() for row in rows),
        size=size,
        cached=cached,
        checkpoints=checkpoints,
        untrusted=untrusted,
    )


def verify_columns(
    rows: Iterable[LeafColumns],
    *,
    size: int,
    cached: Mapping[tuple[int, int], str],
    checkpoints: Sequence[TrustedCheckpoint],
    untrusted: Sequence[str] = (),
) -> LogReport:
    """`verify_log` over rows as the store returns them (`LeafColumns`, index order)."""
    return verify_batches(
        batched(rows),
        size=size,
        cached=cached,
        checkpoints=checkpoints,
        untrusted=untrusted,
    )


def verify_batches(
    batches: Iterable[Sequence[LeafColumns]],
    *,
    size: int,
    cached: Mapping[tuple[int, int], str],
    checkpoints: Sequence[TrustedCheckpoint],
    untrusted: Sequence[str] = (),
) -> LogReport:
    """`verify_columns` over the rows in batches (lists of `LeafColumns`, in index order, as
    a streamed query returns them): the pass `audit verify` makes over the store."""
    tree = _TreeCheck(cached, checkpoints)
    count, problem = first_bad_batches(batches, size=size, on_leaves=tree.add_all)
    if problem is not None:
        return LogReport(
            ok=False,
            count=size,
            reason=problem.reason,
            first_bad_seq=problem.index,
            first_bad_name=problem.name,
        )
    return _tree_report(tree, count, untrusted)


def _completed(level: int, position: int, *, count: int) -> bool:
    """Whether a log of `count` leaves has completed the cached subtree (`level`,
    `position`): one of 2^level leaves, at or above the cache level, inside the log."""
    return CACHE_LEVEL <= level < 64 and position >= 0 and (position + 1) << level <= count


def _tree_report(tree: _TreeCheck, count: int, untrusted: Sequence[str]) -> LogReport:
    def bad(reason: str, first: int | None = None) -> LogReport:
        return LogReport(ok=False, count=count, reason=reason, first_bad_seq=first)

    if tree.pending:
        ahead = tree.pending[-1]
        return bad(
            f"events {count}..{ahead.checkpoint.size - 1} are missing: the log is shorter than "
            f"{ahead.label} of size {ahead.checkpoint.size} (truncated)",
            count,
        )
    if tree.rewritten is not None:
        good, trusted = tree.rewritten
        last = trusted.checkpoint.size - 1
        return bad(
            f"the first {trusted.checkpoint.size} events do not hash to the root of "
            f"{trusted.label}: events between index {good} and {last} were rewritten "
            "together with their leaf hashes",
            good,
        )
    if untrusted:
        return bad(untrusted[0])
    if tree.bad_cache is not None:
        level, position = tree.bad_cache
        first, last = position << level, ((position + 1) << level) - 1
        return bad(
            f"the cached subtree hash (level {level}, position {position}) does not match "
            f"events {first}..{last}: proofs from the cache would not verify"
        )
    extra = next((key for key in sorted(tree.cached) if not _completed(*key, count=count)), None)
    if extra is not None:
        level, position = extra
        return bad(
            f"the subtree cache holds a hash (level {level}, position {position}) for events "
            f"the log has not completed ({count} events): a planted row that would block the "
            "append that completes it"
        )
    root = tree.builder.root().hex()
    return LogReport(
        ok=True,
        count=count,
        reason=f"{count} events verify; root {root}; {tree.checked} signed checkpoints match",
        root_hash=root,
        checkpoints=tree.checked,
    )
