"""RFC 9162 hashing and proofs against transparency-dev's official vectors, and properties."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codefactory.audit.errors import ProofInvalid
from codefactory.audit.merkle import (
    EMPTY_ROOT,
    LeafList,
    RootBuilder,
    consistency_proof,
    hash_children,
    hash_leaf,
    inclusion_proof,
    range_hash,
    root_from_inclusion,
    root_of,
    split_point,
    verify_consistency,
    verify_inclusion,
)
from tests.conftest import SHARED_FIXTURES

VECTORS = SHARED_FIXTURES / "merkle"
# The eight leaves of RFC 6962's test tree (FIELD-NOTES, transparency-dev's `inputs`).
LEAVES = [
    bytes.fromhex(h)
    for h in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
              "606162636465666768696a6b6c6d6e6f"]
]  # fmt: skip
ROOT_1 = "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
ROOT_8 = "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"


def vectors(kind: str) -> list[Path]:
    files = sorted((VECTORS / kind).rglob("*.json"))
    if not files:
        pytest.skip(f"shared fixture data missing: {VECTORS / kind}")
    return files


def b64(value: str | None) -> bytes:
    return base64.b64decode(value or "")


def b64_list(values: list[str] | None) -> list[bytes]:
    return [b64(value) for value in values or []]


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def vector_id(path: Path) -> str:
    return "/".join(path.parts[-2:])


@pytest.mark.parametrize("path", vectors("inclusion"), ids=vector_id)
def test_inclusion_vectors(path: Path) -> None:
    case = load(path)
    check = lambda: verify_inclusion(  # noqa: E731
        case["leafIdx"], case["treeSize"], b64(case["leafHash"]), b64_list(case["proof"]),
        b64(case["root"]),
    )  # fmt: skip
    if case["wantErr"]:
        with pytest.raises(ProofInvalid):
            check()
    else:
        check()


@pytest.mark.parametrize("path", vectors("consistency"), ids=vector_id)
def test_consistency_vectors(path: Path) -> None:
    case = load(path)
    check = lambda: verify_consistency(  # noqa: E731
        case["size1"], case["size2"], b64_list(case["proof"]), b64(case["root1"]),
        b64(case["root2"]),
    )  # fmt: skip
    if case["wantErr"]:
        with pytest.raises(ProofInvalid):
            check()
    else:
        check()


def test_the_vectors_cover_happy_paths_and_tampering() -> None:
    cases = [load(p) for p in vectors("inclusion") + vectors("consistency")]
    assert len(cases) >= 190
    assert sum(not c["wantErr"] for c in cases) >= 10


# --- the RFC 6962 test tree -------------------------------------------------------------


def test_roots_of_the_rfc_6962_test_tree() -> None:
    hashes = [hash_leaf(leaf) for leaf in LEAVES]
    assert root_of([]) == EMPTY_ROOT == hashlib.sha256().digest()
    assert range_hash(LeafList([]), 0, 0) == EMPTY_ROOT
    assert root_of(hashes[:1]).hex() == ROOT_1
    assert root_of(hashes).hex() == ROOT_8


def test_generated_proofs_match_the_happy_path_vectors() -> None:
    """Our generator produces exactly the paths transparency-dev published for this tree."""
    source = LeafList([hash_leaf(leaf) for leaf in LEAVES])
    for path in vectors("inclusion"):
        case = load(path)
        index, size = case["leafIdx"], case["treeSize"]
        if not case["wantErr"] and b64(case["leafHash"]) == source.leaves[index]:
            assert inclusion_proof(source, index, size) == b64_list(case["proof"]), path
            assert range_hash(source, 0, size) == b64(case["root"])
    for path in vectors("consistency"):
        case = load(path)
        if not case["wantErr"] and 0 < case["size1"] < case["size2"] <= 8:
            assert consistency_proof(source, case["size1"], case["size2"]) == b64_list(
                case["proof"]
            ), path


def test_hashing_uses_the_domain_separation_prefixes() -> None:
    assert hash_leaf(b"x") == hashlib.sha256(b"\x00x").digest()
    assert hash_children(b"a", b"b") == hashlib.sha256(b"\x01ab").digest()
    assert [split_point(n) for n in (2, 3, 4, 5, 8, 9)] == [1, 2, 2, 4, 4, 8]


# --- properties over every tree shape ---------------------------------------------------


def tree(n: int) -> LeafList:
    return LeafList([hash_leaf(i.to_bytes(4, "big")) for i in range(n)])


@given(st.integers(1, 300), st.data())
def test_every_inclusion_proof_verifies(n: int, data: st.DataObject) -> None:
    source = tree(n)
    index = data.draw(st.integers(0, n - 1))
    proof = inclusion_proof(source, index, n)
    root = root_of(source.leaves)
    verify_inclusion(index, n, source.leaves[index], proof, root)
    assert len(proof) <= (n - 1).bit_length()
    with pytest.raises(ProofInvalid):
        verify_inclusion(index, n, hash_leaf(b"forged"), proof, root)


@given(st.integers(1, 300), st.data())
def test_every_consistency_proof_verifies(n: int, data: st.DataObject) -> None:
    source = tree(n)
    m = data.draw(st.integers(1, n))
    proof = consistency_proof(source, m, n)
    first_root, second_root = root_of(source.leaves[:m]), root_of(source.leaves)
    verify_consistency(m, n, proof, first_root, second_root)
    assert len(proof) <= 2 * (n - 1).bit_length()
    if m < n:
        with pytest.raises(ProofInvalid):
            verify_consistency(m, n, proof, hash_leaf(b"other log"), second_root)


@given(st.lists(st.binary(max_size=8), max_size=70))
def test_the_root_builder_reports_each_completed_subtree(leaves: list[bytes]) -> None:
    hashes = [hash_leaf(leaf) for leaf in leaves]
    builder = RootBuilder()
    for i, leaf in enumerate(hashes):
        for level, position, node in builder.append(leaf):
            start = position << level
            assert node == root_of(hashes[start : start + (1 << level)])
            assert start + (1 << level) == i + 1
        assert builder.root() == root_of(hashes[: i + 1]) == range_hash(LeafList(hashes), 0, i + 1)


@pytest.mark.parametrize(("index", "size"), [(-1, 4), (4, 4), (0, 0)])
def test_inclusion_of_a_leaf_outside_the_tree_is_refused(index: int, size: int) -> None:
    with pytest.raises(ProofInvalid, match="not in a tree"):
        inclusion_proof(tree(4), index, size)
    with pytest.raises(ProofInvalid, match="not in a tree"):
        root_from_inclusion(index, size, bytes(32), [])


@pytest.mark.parametrize(("first", "second"), [(0, 4), (5, 4), (-1, 2)])
def test_consistency_from_the_empty_or_a_larger_tree_is_refused(first: int, second: int) -> None:
    with pytest.raises(ProofInvalid, match="no consistency proof"):
        consistency_proof(tree(4), first, second)


def test_proofs_of_hashes_that_are_not_32_bytes_are_refused() -> None:
    source = tree(4)
    proof = inclusion_proof(source, 1, 4)
    root = root_of(source.leaves)
    with pytest.raises(ProofInvalid, match="32 bytes"):
        verify_inclusion(1, 4, source.leaves[1], [*proof[:-1], proof[-1][:31]], root)
    with pytest.raises(ProofInvalid, match="32 bytes"):
        verify_inclusion(1, 4, source.leaves[1], proof, root + b"\x00")
    with pytest.raises(ProofInvalid, match="32 bytes"):
        verify_consistency(2, 4, [p + b"\x00" for p in consistency_proof(source, 2, 4)],
                           root_of(source.leaves[:2]), root)  # fmt: skip


def test_a_truncated_or_padded_path_is_named() -> None:
    source = tree(5)
    proof = inclusion_proof(source, 4, 5)
    root = root_of(source.leaves)
    with pytest.raises(ProofInvalid, match="shorter"):
        root_from_inclusion(0, 5, source.leaves[0], inclusion_proof(source, 0, 5)[:-1])
    with pytest.raises(ProofInvalid, match="longer"):
        root_from_inclusion(4, 5, source.leaves[4], [*proof, bytes(32)])
    cons = consistency_proof(source, 3, 5)
    first = root_of(source.leaves[:3])
    with pytest.raises(ProofInvalid, match="shorter"):
        verify_consistency(3, 5, cons[:-1], first, root)
    with pytest.raises(ProofInvalid, match="longer"):
        verify_consistency(3, 5, [*cons, bytes(32)], first, root)
    with pytest.raises(ProofInvalid, match="root of size 5"):
        verify_consistency(3, 5, cons, first, bytes(32))
    with pytest.raises(ProofInvalid, match="not in the tree"):
        verify_inclusion(4, 5, source.leaves[4], proof, bytes(32))
