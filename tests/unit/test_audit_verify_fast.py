"""The fast paths of `audit verify` write and accept exactly what the slow, obvious code does."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codefactory.audit.canonical import (
    _encode,
    all_canonical_objects,
    canonical_json,
    is_canonical,
    is_canonical_object,
    json_string,
)
from codefactory.audit.checkpoint import Checkpoint
from codefactory.audit.diagnose import first_bad_columns
from codefactory.audit.leaf import (
    CanonicalData,
    LeafColumns,
    StoredLeaf,
    leaf_bytes,
    matching_leaf_hashes,
    recompute_leaf_hash,
)
from codefactory.audit.merkle import RootBuilder, hash_leaf, root_of
from codefactory.audit.verify import (
    CACHE_LEVEL,
    TrustedCheckpoint,
    verify_batches,
    verify_columns,
    verify_log,
)

# Text that reaches every branch: characters JSON escapes, DEL, non-ASCII, beyond the BMP,
# lone surrogates (no UTF-8 form), digits next to `.`/`e` (a float's mark inside a string).
awkward = st.lists(
    st.one_of(
        st.characters(exclude_categories=()),
        st.sampled_from(['"', "\\", "\x00", "\n", "\x1f", "\x7f", "\ud800", "é", "\U0001f600"]),
        st.sampled_from(["1.5", "2e3", "NaN", "Infinity"]),
    ),
    max_size=8,
).map("".join)
json_value = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**60), 2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | awkward,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(awkward, inner, max_size=3),
    max_leaves=8,
)


def slow_is_canonical(text: str) -> bool:
    """`is_canonical` as it was before its fast path: decoder and encoder built per call."""
    floats = False

    def parse_float(literal: str) -> float:
        nonlocal floats
        floats = True
        return float(literal)

    def reject(name: str) -> Any:
        raise ValueError(name)

    value = json.loads(text, parse_float=parse_float, parse_constant=reject)
    if not floats and re.search("[\U00010000-\U0010ffff]", text) is None:
        fast = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return bool(fast == text)
    try:
        return bool(_encode(value) == text)
    except ValueError:
        return False


def written(value: Any, form: int) -> str:
    """`value` as JSON text in one of several forms, only the first of them canonical (a
    value with a lone surrogate, which has no canonical form, as `json.dumps` writes it)."""
    if form == 0:
        try:
            return canonical_json(value).decode()
        except ValueError:
            return str(json.dumps(value, ensure_ascii=False))
    sort, ascii_only, separators = [
        (True, False, (",", ":")),
        (False, False, (",", ":")),
        (True, True, (",", ":")),
        (True, False, (", ", ": ")),
    ][form - 1]
    return str(json.dumps(value, sort_keys=sort, ensure_ascii=ascii_only, separators=separators))


@given(awkward)
def test_json_string_equals_the_c_encoder(value: str) -> None:
    assert json_string(value) == json.dumps(value, ensure_ascii=False)


def slow_is_canonical_object(text: object) -> bool:
    try:
        return isinstance(text, str) and text.startswith("{") and slow_is_canonical(text)
    except ValueError:
        return False


@given(json_value, st.integers(0, 4))
def test_is_canonical_agrees_with_the_slow_check(value: Any, form: int) -> None:
    text = written(value, form)
    assert is_canonical(text) == slow_is_canonical(text)
    assert is_canonical_object(text) == slow_is_canonical_object(text)
    assert is_canonical_object(text + " ") is False


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ('{"x":1}', True),
        ('{"x":1.0}', False),  # RFC 8785 writes 1
        ('{"x":1e2}', False),  # and 100
        ('{"x":100}', True),
        ('{"x":1e-07}', False),  # what Python's repr writes, not ECMAScript's 1e-7
        ('{"x":1e-7}', True),
        ('{"x":1e+21}', True),
        ('{"x":"1.5 or 2e3"}', True),  # a float's mark inside a string is no float
        ('{"x":-0}', False),
        ('{"b":1,"a":2}', False),
        ('{"a":"\\u00e9"}', False),  # RFC 8785 keeps é as UTF-8
        ('{"a":"é"}', True),
        ('{"a":1} ', False),  # whitespace after the value
        (' {"a":1}', False),
        ('{"a":"\U0001f600"}', True),  # beyond the BMP: the exact encoder decides
    ],
)
def test_is_canonical_on_known_texts(text: str, canonical: bool) -> None:
    assert is_canonical(text) is canonical
    assert slow_is_canonical(text) is canonical
    assert is_canonical_object(text) is canonical


@pytest.mark.parametrize(
    "text", ['{"x":NaN}', '{"x":Infinity}', '{"x":-Infinity}', "{", "", '{"a":1}x', "[1.5,NaN]"]
)
def test_is_canonical_raises_on_text_that_is_not_json(text: str) -> None:
    with pytest.raises(ValueError):
        is_canonical(text)
    assert is_canonical_object(text) is False


@pytest.mark.parametrize("value", [None, 1, b'{"a":1}', "[1]", '"{"', "1"])
def test_only_text_holding_an_object_can_be_a_canonical_object(value: Any) -> None:
    assert is_canonical_object(value) is False


columns = st.tuples(
    st.integers(0, 2**40),
    awkward,
    awkward,
    awkward,
    awkward,
    st.one_of(
        st.sampled_from(["{}", '{"a":1}', '{"a":"\\u001f","b":[1.5,null]}']),
        st.dictionaries(awkward, json_value, max_size=3).map(lambda d: written(d, 0)),
        st.builds(written, st.dictionaries(awkward, json_value, max_size=3), st.integers(1, 4)),
        awkward,
    ),
)


def obvious_leaf_hash(
    seq: int, name: str, actor: str, run_id: str, at: str, data: str
) -> bytes | None:
    """The leaf hash as `StoredLeaf.leaf_bytes` defined it before the fast path."""
    try:
        if not (data.startswith("{") and slow_is_canonical(data)):
            return None
        text = (
            f'{{"actor":{json.dumps(actor, ensure_ascii=False)},'
            f'"at":{json.dumps(at, ensure_ascii=False)},"data":{data},'
            f'"name":{json.dumps(name, ensure_ascii=False)},'
            f'"run_id":{json.dumps(run_id, ensure_ascii=False)},"seq":{seq}}}'
        )
        return hash_leaf(text.encode())
    except ValueError:
        return None


@given(columns)
def test_the_recomputed_leaf_hash_is_the_obvious_one(
    row: tuple[int, str, str, str, str, str],
) -> None:
    seq, name, actor, run_id, at, data = row
    full: LeafColumns = (seq, name, actor, run_id, at, data, "")
    expected = obvious_leaf_hash(seq, name, actor, run_id, at, data)
    assert recompute_leaf_hash(full, CanonicalData(), seq) == expected
    leaf = StoredLeaf.from_columns(full)
    assert leaf.columns() == full
    assert leaf.recomputed_hash() == (None if expected is None else expected.hex())
    if expected is not None:
        assert hash_leaf(leaf_bytes(seq=seq, name=name, actor=actor, run_id=run_id, at=at,
                                    data=data)) == expected  # fmt: skip


@pytest.mark.parametrize("column", [1, 2, 3, 4])
@pytest.mark.parametrize(
    "text", ['"', "\\", "\x00", "\x1f", "\n", "\x7f", "é", "\U0001f600", "\ud800"]
)
def test_each_column_is_escaped_as_json_escapes_it(column: int, text: str) -> None:
    values = ["run-state-changed", "factory", "r-1", "2025-03-01T09:30:00.000000Z"]
    values[column - 1] = f"a{text}b"
    name, actor, run_id, at = values
    full: LeafColumns = (7, name, actor, run_id, at, '{"a":1}', "")
    expected = obvious_leaf_hash(7, name, actor, run_id, at, '{"a":1}')
    assert (expected is None) == (text == "\ud800")
    assert recompute_leaf_hash(full, CanonicalData(), 7) == expected


def test_remembered_data_texts_keep_their_answer_past_the_limit() -> None:
    canonical = CanonicalData(limit=2)
    texts = ['{"a":1}', '{"b":1,"a":2}', '{"a":1.0}', "[1]", '{"c":"d"}', "{", '{"a":1}']
    expected = [True, False, False, False, True, False, True]
    assert [canonical(text) for text in texts * 3] == expected * 3


def row(seq: int, data: str, name: str = "run-state-changed") -> LeafColumns:
    """A stored row whose leaf hash is the hash of exactly its columns (even if not canonical)."""
    encoded = leaf_bytes(seq=seq, name=name, actor="factory", run_id="r-1",
                         at="2025-03-01T09:30:00.000000Z", data=data)  # fmt: skip
    return (seq, name, "factory", "r-1", "2025-03-01T09:30:00.000000Z", data,
            hash_leaf(encoded).hex())  # fmt: skip


@pytest.mark.parametrize("bad", ['{"state":"verifying","previous":"proposing"}', '{"n":1.0}'])
def test_non_canonical_data_among_repeated_data_is_named_even_with_a_matching_hash(
    bad: str,
) -> None:
    same = '{"previous":"proposing","state":"verifying"}'
    rows = [row(seq, same) for seq in range(300)] + [row(300, bad)] + [row(301, same)]
    report = verify_columns(rows, size=len(rows), cached={}, checkpoints=[])
    assert not report.ok
    assert report.first_bad_seq == 300 and report.first_bad_name == "run-state-changed"
    assert report.reason == "event 300 (run-state-changed) was altered"


def test_verify_columns_and_verify_log_agree_and_feed_every_leaf() -> None:
    rows = [row(seq, f'{{"i":{seq % 7}}}') for seq in range(600)]
    fed: list[bytes] = []
    assert first_bad_columns(rows, size=600, on_leaf=fed.append) == (600, None)
    assert fed == [bytes.fromhex(r[6]) for r in rows]
    builder, cached = RootBuilder(), dict[tuple[int, int], str]()
    for leaf_hash in fed:
        for level, position, node in builder.append(leaf_hash):
            if level >= CACHE_LEVEL:
                cached[level, position] = node.hex()
    assert set(cached) == {(8, 0), (8, 1), (9, 0)}
    fast = verify_columns(rows, size=600, cached=cached, checkpoints=[])
    leaves = [StoredLeaf.from_columns(r) for r in rows]
    slow = verify_log(leaves, size=600, cached=cached, checkpoints=[])
    assert fast == slow and fast.ok and fast.root_hash == root_of(fed).hex()
    cached[8, 1] = cached[8, 0]
    broken = verify_columns(rows, size=600, cached=cached, checkpoints=[])
    assert not broken.ok and "(level 8, position 1)" in broken.reason


def test_an_upper_case_stored_hash_is_not_the_leaf_hash() -> None:
    rows = [row(seq, "{}") for seq in range(3)]
    rows[1] = (*rows[1][:6], rows[1][6].upper())
    report = verify_columns(rows, size=3, cached={}, checkpoints=[])
    assert not report.ok and report.first_bad_seq == 1


def test_a_seq_gap_is_named() -> None:
    rows = [row(seq, "{}") for seq in (0, 1, 3)]
    report = verify_columns(rows, size=3, cached={}, checkpoints=[])
    assert (report.ok, report.first_bad_seq, report.reason) == (
        False,
        1 + 1,
        "event 2 is missing (removed)",
    )


def test_stored_leaf_round_trips_through_columns() -> None:
    leaf = StoredLeaf.from_columns(row(5, "{}"))
    assert dataclasses.replace(leaf).columns() == row(5, "{}")
    assert hashlib.sha256(b"\x00" + leaf.leaf_bytes()).hexdigest() == leaf.leaf_hash


# -- batches: what `audit verify` runs over the store ------------------------------------------


@given(st.lists(st.tuples(json_value, st.integers(0, 4)), max_size=6), st.sampled_from([0, 1]))
def test_a_batch_of_data_texts_is_canonical_only_if_each_is(
    values: list[tuple[Any, int]], shape: int
) -> None:
    texts = [written({"k": value} if shape else value, form) for value, form in values]
    if all_canonical_objects(texts):
        assert all(is_canonical_object(text) for text in texts)


@pytest.mark.parametrize(
    "texts",
    [
        ['{"a":"x', 'y"}'],  # one object split over two rows
        ['{"a":1},{"b":2}', "{}"],  # two objects in one row
        ['{"a":1}', '{"b":2} '],
        ['{"a":1}', "[1]"],
        ['{"a":1}', '{"a":1.0}'],
        ['{"a":1}', b'{"a":1}'],
        ['{"a":1}', None],
        ['{"b":1,"a":2}'],
        ['{"a":1,"a":1}'],
    ],
)
def test_a_batch_holding_one_text_that_is_not_a_canonical_object_is_not(texts: list[Any]) -> None:
    assert all_canonical_objects(texts) is False
    assert not all(is_canonical_object(text) for text in texts)


def test_a_batch_of_canonical_objects_is_canonical() -> None:
    texts = [canonical_json({"i": i, "s": f"é {i}", "l": [{"a": 1}, {"b": None}]}).decode()
             for i in range(300)]  # fmt: skip
    assert all_canonical_objects(texts) and all_canonical_objects([])


def obvious_matching(rows: list[Any], first: int) -> list[bytes]:
    """The leaf hashes of the leading rows that are the leaves they claim, row by row."""
    hashes: list[bytes] = []
    for index, columns in enumerate(rows, start=first):
        seq, name, actor, run_id, at, data, stored = columns
        if seq != index or not all(isinstance(c, str) for c in (name, actor, run_id, at, data)):
            break
        digest = obvious_leaf_hash(index, name, actor, run_id, at, data)
        if digest is None or digest.hex() != stored:
            break
        hashes.append(digest)
    return hashes


def hashed(seq: int, columns: tuple[str, str, str, str, str]) -> LeafColumns:
    """A row at `seq` whose stored hash is its leaf's (blank if its columns have none)."""
    digest = obvious_leaf_hash(seq, *columns)
    return (seq, *columns, "" if digest is None else digest.hex())


plain_columns = st.tuples(
    st.sampled_from(["run-state-changed", "tool-called"]),
    st.sampled_from(["factory", "alice@example.com"]),
    st.sampled_from(["", "r-1"]),
    st.just("2025-03-01T09:30:00.000000Z"),
    st.dictionaries(st.text(max_size=3), st.integers() | st.text(max_size=3), max_size=2).map(
        lambda d: written(d, 0)
    ),
)


@given(
    st.lists(st.one_of(plain_columns, columns.map(lambda c: c[1:])), max_size=8),
    st.integers(0, 300),
    st.sampled_from(["intact", "hash", "upper", "seq", "bytes"]),
    st.integers(0, 7),
)
def test_matching_leaf_hashes_are_the_obvious_ones(
    rows_columns: list[tuple[str, str, str, str, str]], first: int, change: str, where: int
) -> None:
    rows: list[Any] = [hashed(first + i, c) for i, c in enumerate(rows_columns)]
    if rows and change != "intact":
        i = where % len(rows)
        seq, name, actor, run_id, at, data, stored = rows[i]
        rows[i] = {
            "hash": (seq, name, actor, run_id, at, data, hashlib.sha256(b"x").hexdigest()),
            "upper": (seq, name, actor, run_id, at, data, stored.upper()),
            "seq": (seq + 1, name, actor, run_id, at, data, stored),
            "bytes": (seq, name, actor.encode("utf-8", "replace"), run_id, at, data, stored),
        }[change]
    assert matching_leaf_hashes(rows, first) == obvious_matching(rows, first)


def test_stored_hashes_shifted_across_rows_do_not_match() -> None:
    rows = [row(seq, "{}") for seq in range(4)]
    joined = "".join(r[6] for r in rows)
    cut = [joined[:70], joined[70:128], *(r[6] for r in rows[2:])]  # same text, other rows
    shifted = [(*r[:6], stored) for r, stored in zip(rows, cut, strict=True)]
    assert matching_leaf_hashes(shifted, 0) == []
    assert len(matching_leaf_hashes(rows, 0)) == 4


@pytest.mark.parametrize("bad", [0, 1, 255, 256, 299])
def test_a_long_plain_batch_stops_at_its_first_bad_row(bad: int) -> None:
    rows = [row(seq, f'{{"i":{seq}}}') for seq in range(300)]
    good = [bytes.fromhex(r[6]) for r in rows]
    rows[bad] = (*rows[bad][:6], rows[bad][6][:-1] + "0")
    if good[bad].hex() == rows[bad][6]:
        rows[bad] = (*rows[bad][:6], rows[bad][6][:-1] + "1")
    assert matching_leaf_hashes(rows, 0) == good[:bad]
    lone = '{"a":"\ud800"}'  # a lone surrogate: canonical text, but no UTF-8 form
    surrogate = [*rows[:bad], (*rows[bad][:5], lone, rows[bad][6]), *rows[bad + 1 :]]
    assert matching_leaf_hashes(surrogate, 0) == good[:bad]


def cached_subtrees(leaf_hashes: list[bytes]) -> dict[tuple[int, int], str]:
    builder, cached = RootBuilder(), dict[tuple[int, int], str]()
    for leaf_hash in leaf_hashes:
        for level, position, node in builder.append(leaf_hash):
            if level >= CACHE_LEVEL:
                cached[level, position] = node.hex()
    return cached


def in_batches(rows: list[LeafColumns], size: int) -> list[list[LeafColumns]]:
    return [rows[i : i + size] for i in range(0, len(rows), size)] + [[]]


@pytest.mark.parametrize("size", [1, 2, 3, 255, 256, 1000])
@pytest.mark.parametrize(
    "change", ["intact", "altered", "removed", "renumbered", "inserted", "swapped", "cache"]
)
def test_batches_of_any_size_report_what_row_by_row_reports(size: int, change: str) -> None:
    rows = [row(seq, f'{{"i":{seq % 5}}}') for seq in range(600)]
    fed = [bytes.fromhex(r[6]) for r in rows]
    cached = cached_subtrees(fed)
    checkpoints = [
        TrustedCheckpoint(checkpoint=Checkpoint(origin="o", size=n, root=root_of(fed[:n])),
                          label=f"checkpoint {n}")
        for n in (1, 255, 256, 257, 511, 512, 600)
    ]  # fmt: skip
    at = 256
    if change == "altered":
        rows[at] = row(at, '{"i":9}')
        rows[at] = (*rows[at][:6], rows[at + 1][6])
    elif change == "removed":
        del rows[at]
    elif change == "renumbered":
        rows = rows[:at] + [(r[0] - 1, *r[1:]) for r in rows[at + 1 :]]
    elif change == "inserted":
        rows.insert(at, row(at, '{"i":"planted"}'))
    elif change == "swapped":
        rows[at], rows[at + 1] = (at, *rows[at + 1][1:]), (at + 1, *rows[at][1:])
    elif change == "cache":
        cached[8, 1] = cached[8, 0]
    leaves = [StoredLeaf.from_columns(r) for r in rows]
    expected = verify_log(leaves, size=len(rows), cached=cached, checkpoints=checkpoints)
    report = verify_batches(
        in_batches(rows, size), size=len(rows), cached=cached, checkpoints=checkpoints
    )
    assert report == expected
    assert report.ok == (change == "intact")
    if change == "intact":
        assert report.checkpoints == len(checkpoints)
        assert report.root_hash == root_of(fed).hex()


@given(st.lists(st.integers(0, 40), max_size=6))
def test_extend_builds_the_tree_append_builds(runs: list[int]) -> None:
    leaves = [hashlib.sha256(b"%d" % i).digest() for i in range(sum(runs))]
    one, many = RootBuilder(), RootBuilder()
    for leaf in leaves:
        one.append(leaf)
    start = 0
    for run in runs:
        many.extend(leaves[start : start + run])
        start += run
        assert many.size == start
    assert (many.size, many.root()) == (one.size, one.root())
