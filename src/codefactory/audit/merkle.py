"""RFC 9162 (RFC 6962) Merkle tree hashing, inclusion and consistency proofs.

Pure functions over hashes. Proof generation asks a `SubtreeSource` for the hashes of
perfect, aligned subtrees, so a store can answer from a cache in O(log n) lookups; the
verifiers are the RFC's own algorithms and agree with transparency-dev's test vectors.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Protocol

from codefactory.audit.errors import ProofInvalid

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()  # RFC 9162 §2.1.1: MTH({}) = HASH()
_sha256 = hashlib.sha256


def hash_leaf(data: bytes) -> bytes:
    """RFC 9162 §2.1.1: `SHA-256(0x00 || data)`."""
    return hashlib.sha256(b"\x00" + data).digest()


def hash_children(left: bytes, right: bytes) -> bytes:
    """RFC 9162 §2.1.1: `SHA-256(0x01 || left || right)`."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two smaller than `n` (n ≥ 2), where the RFC splits a tree."""
    return 1 << ((n - 1).bit_length() - 1)


class SubtreeSource(Protocol):
    """Hashes of perfect subtrees: `perfect(level, i)` covers leaves [i·2^level, (i+1)·2^level)."""

    def perfect(self, level: int, index: int) -> bytes: ...


class LeafList:
    """A `SubtreeSource` over leaf hashes in memory (tests, small logs)."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.leaves = leaves

    def perfect(self, level: int, index: int) -> bytes:
        start = index << level
        return root_of(self.leaves[start : start + (1 << level)])


class RootBuilder:
    """The root of a growing tree in O(log n) memory (a compact range of perfect subtrees)."""

    def __init__(self) -> None:
        self._stack: list[bytes] = []
        self.size = 0

    def append(self, leaf_hash: bytes) -> list[tuple[int, int, bytes]]:
        """Add a leaf; returns the perfect subtrees `(level, index, hash)` it completed."""
        completed: list[tuple[int, int, bytes]] = []
        stack, node, level, size = self._stack, leaf_hash, 0, self.size
        self.size = after = size + 1
        while size & 1:
            node = _sha256(b"\x01" + stack.pop() + node).digest()  # hash_children, inlined
            level, size = level + 1, size >> 1
            completed.append((level, (after >> level) - 1, node))
        stack.append(node)
        return completed

    def push(self, leaf_hash: bytes) -> None:
        """Add a leaf, like `append`, without listing the subtrees it completes."""
        stack, node, size = self._stack, leaf_hash, self.size
        self.size = size + 1
        while size & 1:
            node = _sha256(b"\x01" + stack.pop() + node).digest()  # hash_children, inlined
            size >>= 1
        stack.append(node)

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Add leaves in order, like `push` for each (one call for a batch of leaves)."""
        stack, size = self._stack, self.size
        pop, push = stack.pop, stack.append
        for node in leaf_hashes:
            below, size = size, size + 1
            while below & 1:
                node = _sha256(b"\x01" + pop() + node).digest()  # hash_children, inlined
                below >>= 1
            push(node)
        self.size = size

    def root(self) -> bytes:
        """MTH of the leaves so far: the subtrees folded right to left (RFC 9162 §2.1.1)."""
        if not self._stack:
            return EMPTY_ROOT
        node = self._stack[-1]
        for left in reversed(self._stack[:-1]):
            node = hash_children(left, node)
        return node


def root_of(leaf_hashes: Iterable[bytes]) -> bytes:
    """MTH of a list of leaf hashes."""
    builder = RootBuilder()
    for leaf in leaf_hashes:
        builder.append(leaf)
    return builder.root()


def range_hash(source: SubtreeSource, start: int, end: int) -> bytes:
    """MTH(D[start:end]) for a range the RFC's recursion visits (start aligned to its split)."""
    n = end - start
    if n <= 0:
        return EMPTY_ROOT
    if n & (n - 1) == 0 and start % n == 0:
        return source.perfect(n.bit_length() - 1, start // n)
    k = split_point(n)
    return hash_children(range_hash(source, start, start + k), range_hash(source, start + k, end))


def inclusion_proof(source: SubtreeSource, index: int, size: int) -> list[bytes]:
    """RFC 9162 §2.1.3.1 PATH(m, D[n]): the audit path of leaf `index` in the tree of `size`."""
    if not 0 <= index < size:
        raise ProofInvalid(f"leaf index {index} is not in a tree of size {size}")
    proof: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = split_point(end - start)
        if index < start + k:
            proof.append(range_hash(source, start + k, end))
            end = start + k
        else:
            proof.append(range_hash(source, start, start + k))
            start += k
    proof.reverse()
    return proof


def consistency_proof(source: SubtreeSource, first: int, second: int) -> list[bytes]:
    """RFC 9162 §2.1.4.1 PROOF(m, D[n]): tree `first` is a prefix of tree `second`."""
    if not 0 < first <= second:
        raise ProofInvalid(f"no consistency proof from size {first} to size {second}")
    proof: list[bytes] = []
    start, end, complete = 0, second, True
    while first != end:  # SUBPROOF(first - start, D[start:end], complete)
        k = split_point(end - start)
        if first - start <= k:
            proof.append(range_hash(source, start + k, end))
            end = start + k
        else:
            proof.append(range_hash(source, start, start + k))
            start, complete = start + k, False
    if not complete:
        proof.append(range_hash(source, start, end))
    proof.reverse()
    return proof


def _require_hashes(*hashes: bytes) -> None:
    for value in hashes:
        if len(value) != HASH_SIZE:
            raise ProofInvalid(f"a SHA-256 hash is {HASH_SIZE} bytes, got {len(value)}")


def root_from_inclusion(index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes]) -> bytes:
    """RFC 9162 §2.1.3.2: the root an inclusion proof leads to; ProofInvalid if malformed."""
    if not 0 <= index < size:
        raise ProofInvalid(f"leaf index {index} is not in a tree of size {size}")
    _require_hashes(leaf_hash, *proof)
    fn, sn, node = index, size - 1, leaf_hash
    for sibling in proof:
        if sn == 0:
            raise ProofInvalid("the inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            node = hash_children(sibling, node)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            node = hash_children(node, sibling)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofInvalid("the inclusion proof is shorter than the tree is deep")
    return node


def verify_inclusion(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise ProofInvalid unless `proof` shows leaf `index` of tree `size` under `root`."""
    _require_hashes(root)
    if root_from_inclusion(index, size, leaf_hash, proof) != root:
        raise ProofInvalid(f"leaf {index} is not in the tree of size {size} with that root")


def verify_consistency(
    first: int, second: int, proof: Sequence[bytes], first_root: bytes, second_root: bytes
) -> None:
    """RFC 9162 §2.1.4.2: raise ProofInvalid unless tree `first` is a prefix of tree `second`."""
    if first > second:
        raise ProofInvalid(f"size {first} is larger than size {second}")
    if first == 0:
        raise ProofInvalid("a consistency proof from the empty tree proves nothing")
    if first == second:
        if proof:
            raise ProofInvalid("equal sizes need an empty consistency proof")
        if first_root != second_root:
            raise ProofInvalid(f"two different roots for the same size {first}")
        return
    if not proof:
        raise ProofInvalid("an empty consistency proof between different sizes")
    _require_hashes(first_root, second_root, *proof)
    path = list(proof)
    if first & (first - 1) == 0:  # the first tree is a perfect subtree: its root starts the path
        path.insert(0, first_root)
    fr, sr = _consistency_roots(first, second, path)
    if fr != first_root:
        raise ProofInvalid(f"the proof does not lead to the root of size {first}")
    if sr != second_root:
        raise ProofInvalid(f"the proof does not lead to the root of size {second}")


def _consistency_roots(first: int, second: int, path: list[bytes]) -> tuple[bytes, bytes]:
    """Steps 3-7 of RFC 9162 §2.1.4.2: the two roots a consistency path leads to."""
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for node in path[1:]:
        if sn == 0:
            raise ProofInvalid("the consistency proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            fr, sr = hash_children(node, fr), hash_children(node, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = hash_children(sr, node)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofInvalid("the consistency proof is shorter than the tree is deep")
    return fr, sr
