"""Leaves of the Merkle audit log: canonical encoding, leaf hashes, and naming the first bad row."""

from __future__ import annotations

import dataclasses
import hashlib
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from codefactory.audit.canonical import canonical_json, is_canonical
from codefactory.audit.diagnose import first_bad_row
from codefactory.audit.leaf import StoredLeaf, format_at, leaf_record, stored_leaf
from codefactory.audit.merkle import hash_leaf
from codefactory.audit.port import LogReport
from codefactory.audit.verify import verify_log
from codefactory.domain import AuditEvent, UnknownEvent

T0 = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
NAMES = ["trigger-received", "run-authorized", "run-state-changed", "check-finished"]


def event(index: int, **data: object) -> AuditEvent:
    return UnknownEvent(
        kind=NAMES[index % len(NAMES)],
        actor="factory",
        run_id=f"run-{index % 3}",
        payload={"index": index, **data},
        at=T0 + timedelta(seconds=index),
    )


def build(events: list[AuditEvent]) -> list[StoredLeaf]:
    return [stored_leaf(seq, item) for seq, item in enumerate(events)]


def log(n: int) -> list[StoredLeaf]:
    return build([event(i) for i in range(n)])


def renumber(rows: list[StoredLeaf]) -> list[StoredLeaf]:
    return [dataclasses.replace(row, seq=seq) for seq, row in enumerate(rows)]


def swap_content(rows: list[StoredLeaf], a: int, b: int) -> list[StoredLeaf]:
    """Swap every column but seq of the rows at positions a and b."""
    out = list(rows)
    out[a] = dataclasses.replace(rows[b], seq=rows[a].seq)
    out[b] = dataclasses.replace(rows[a], seq=rows[b].seq)
    return out


def verify(rows: list[StoredLeaf]) -> LogReport:
    return verify_log(rows, size=len(rows), cached={}, checkpoints=[])


# --- canonical JSON (RFC 8785) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "text"),
    [
        # RFC 8785 §3.2.2.3 and appendix B samples of ECMAScript number serialization.
        (0.0, "0"),
        (-0.0, "0"),
        (4.50, "4.5"),
        (2e-3, "0.002"),
        (1e-6, "0.000001"),
        (1e-7, "1e-7"),
        (-1.5e-7, "-1.5e-7"),
        (1e-27, "1e-27"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (1e30, "1e+30"),
        (333333333.33333329, "333333333.3333333"),
        (9007199254740992.0, "9007199254740992"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (-123.456, "-123.456"),
    ],
)
def test_floats_are_written_as_ecmascript_does(number: float, text: str) -> None:
    assert canonical_json(number) == text.encode()
    assert is_canonical(text)


def test_object_members_sort_by_utf16_code_units() -> None:
    # The RFC 8785 §3.2.3 example: U+1F600 (a surrogate pair) sorts before U+FB33.
    obj = {"\u20ac": 1, "\r": 2, "\U0001f600": 3, "\ufb33": 4, "1": 5, "\u0080": 6, "\u00f6": 7}
    expected = '{"\\r":2,"1":5,"\u0080":6,"\u00f6":7,"\u20ac":1,"\U0001f600":3,"\ufb33":4}'
    assert canonical_json(obj) == expected.encode("utf-8")
    assert is_canonical(expected)
    # Code-point order, what a naive encoder writes, is not canonical here.
    assert not is_canonical(
        '{"\\r":2,"1":5,"\u0080":6,"\u00f6":7,"\u20ac":1,"\ufb33":4,"\U0001f600":3}'
    )


def test_no_whitespace_utf8_and_minimal_escapes() -> None:
    value = {"b": [None, True, False, 3, 'é\n\x1f\x7f"\\'], "a": ("x",)}
    text = '{"a":["x"],"b":[null,true,false,3,"é\\n\\u001f\x7f\\"\\\\"]}'
    assert canonical_json(value) == text.encode()
    assert is_canonical(text)


@pytest.mark.parametrize(
    "text",
    ['{"a": 1}', '{"b":1,"a":2}', '{"a":1.0}', '{"a":"\\u00e9"}', '{"a":1E3}', "[-0]", "[1e400]"],
)
def test_text_in_another_form_is_not_canonical(text: str) -> None:
    assert not is_canonical(text)


def test_text_that_is_not_json_raises() -> None:
    with pytest.raises(ValueError):
        is_canonical('{"x":NaN}')
    with pytest.raises(ValueError):
        is_canonical("{")


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, {"x": [math.nan]}, "\ud800"])
def test_values_without_a_canonical_form_raise_value_error(bad: object) -> None:
    with pytest.raises(ValueError):
        canonical_json(bad)


@pytest.mark.parametrize("bad", [{1, 2}, {1: "x"}, {"at": T0}, b"bytes"])
def test_values_json_has_no_form_for_raise_type_error(bad: object) -> None:
    with pytest.raises(TypeError):
        canonical_json(bad)


json_leaf = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8)
json_value = st.recursive(
    json_leaf | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


@given(json_value)
def test_canonical_text_is_recognised_as_canonical(value: Any) -> None:
    try:
        text = canonical_json(value).decode()
    except ValueError:  # lone surrogates
        return
    assert is_canonical(text)


# --- leaves ----------------------------------------------------------------------------


def test_times_are_utc_with_microseconds() -> None:
    cet = timezone(timedelta(hours=1))
    assert format_at(datetime(2025, 1, 31, 10, 30, tzinfo=cet)) == "2025-01-31T09:30:00.000000Z"
    assert format_at(datetime(5, 1, 1, 0, 0, 0, 7, tzinfo=UTC)) == "0005-01-01T00:00:00.000007Z"


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        format_at(datetime(2025, 1, 31, 10, 30))


def test_leaf_record_holds_every_field_of_the_event() -> None:
    assert leaf_record(7, event(2, why="policy")) == {
        "seq": 7,
        "name": "run-state-changed",
        "actor": "factory",
        "run_id": "run-2",
        "at": "2025-03-01T09:30:02.000000Z",
        "data": {"index": 2, "why": "policy"},
    }


def test_the_leaf_hash_is_rfc_9162_over_the_canonical_record() -> None:
    item = event(1, ratio=1.0, tags=("a", "b"), note="é\U0001f600")
    row = stored_leaf(4, item)
    assert row.data == '{"index":1,"note":"é\U0001f600","ratio":1,"tags":["a","b"]}'
    leaf = canonical_json(leaf_record(4, item))
    assert row.leaf_bytes() == leaf
    assert row.leaf_hash == hashlib.sha256(b"\x00" + leaf).hexdigest() == hash_leaf(leaf).hex()
    assert row.record() == {
        **leaf_record(4, item),
        "data": {**item.data, "ratio": 1, "tags": ["a", "b"]},
    }


@given(
    st.builds(
        UnknownEvent,
        kind=st.sampled_from(NAMES),
        actor=st.text(max_size=10),
        run_id=st.text(max_size=6),
        payload=st.dictionaries(st.text(max_size=6), json_value, max_size=4),
        at=st.datetimes(timezones=st.just(UTC)),
    ),
    st.integers(0, 2**40),
)
def test_stored_leaves_are_the_canonical_record(item: AuditEvent, seq: int) -> None:
    try:
        expected = canonical_json(leaf_record(seq, item))
    except ValueError:
        with pytest.raises(ValueError):
            stored_leaf(seq, item)
        return
    row = stored_leaf(seq, item)
    assert row.leaf_bytes() == expected
    assert row.recomputed_hash() == row.leaf_hash


@pytest.mark.parametrize("data", ['{"x": 1}', '{"x":NaN}', "{", "[1]"])
def test_rows_whose_data_is_not_a_canonical_object_do_not_hash(data: str) -> None:
    row = dataclasses.replace(stored_leaf(0, event(0)), data=data)
    assert row.recomputed_hash() is None
    with pytest.raises(ValueError):
        row.leaf_bytes()


# --- naming the first bad row ----------------------------------------------------------


def test_an_empty_log_verifies() -> None:
    report = verify([])
    assert (report.ok, report.count) == (True, 0)
    assert report.root_hash == hashlib.sha256().hexdigest()


def test_an_intact_log_verifies_and_feeds_every_leaf() -> None:
    rows = log(10)
    fed: list[bytes] = []
    assert first_bad_row(rows, size=10, on_leaf=fed.append) == (10, None)
    assert fed == [bytes.fromhex(row.leaf_hash) for row in rows]
    report = verify(rows)
    assert report.ok and report.count == 10 and report.first_bad_seq is None
    assert report.reason.startswith("10 events verify; root ")


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("name", "run-approved"),
        ("actor", "mallory"),
        ("run_id", "run-9"),
        ("at", "2025-03-01T09:30:04.000001Z"),
        ("data", '{"x":1}'),
        ("data", '{"index": 4}'),
        ("data", "not json"),
        ("leaf_hash", "cd" * 32),
        ("leaf_hash", "not hex"),
    ],
)
def test_an_edited_column_is_reported_as_altered(column: str, value: str) -> None:
    rows = log(8)
    changes: dict[str, Any] = {column: value}
    rows[4] = dataclasses.replace(rows[4], **changes)
    report = verify(rows)
    assert not report.ok
    assert report.first_bad_seq == 4
    assert report.first_bad_name == rows[4].name
    assert report.reason == f"event 4 ({rows[4].name}) was altered"


def test_an_edited_last_event_is_detected() -> None:
    rows = log(5)
    rows[-1] = dataclasses.replace(rows[-1], data='{"index":99}')
    assert verify(rows).first_bad_seq == 4


@pytest.mark.parametrize("removed", [0, 3, 8])
def test_a_removed_event_leaves_a_gap(removed: int) -> None:
    rows = log(10)
    del rows[removed]
    report = verify(rows)
    assert (report.ok, report.first_bad_seq, report.first_bad_name) == (False, removed, None)
    assert report.reason == f"event {removed} is missing (removed)"


@pytest.mark.parametrize("removed", [0, 6, 8, 9])
def test_a_removed_event_is_found_when_the_rest_were_renumbered(removed: int) -> None:
    rows = log(10)
    del rows[removed]
    report = verify(renumber(rows))
    if removed == 9:  # the newest: only a checkpoint shows that (see verify's tests)
        assert report.ok
        return
    assert report.first_bad_seq == removed
    assert report.reason == f"event {removed} is missing (removed, later events renumbered)"


@pytest.mark.parametrize(("a", "b"), [(0, 1), (2, 3), (0, 9), (3, 7), (8, 9)])
def test_swapped_events_are_out_of_order(a: int, b: int) -> None:
    rows = log(10)
    report = verify(swap_content(rows, a, b))
    assert not report.ok
    assert report.first_bad_seq == a
    assert report.first_bad_name == rows[b].name
    assert report.reason == f"events out of order at {a}"


def test_a_repeated_seq_is_out_of_order() -> None:
    rows = log(5)
    report = verify([*rows[:3], rows[2], *rows[3:]])
    assert report.first_bad_seq == 2
    assert report.reason == "events out of order at 2 (seq repeated)"


@pytest.mark.parametrize("at", [0, 4, 9])
@pytest.mark.parametrize("careful", [True, False])
def test_an_inserted_event_is_reported(at: int, careful: bool) -> None:
    """A forged row put before event `at`, the rest renumbered; a careful forger hashes it."""
    rows = log(10)
    forged = stored_leaf(at, UnknownEvent(kind="run-approved", actor="mallory", at=T0))
    if not careful:
        forged = dataclasses.replace(forged, leaf_hash="ee" * 32)
    report = verify(renumber([*rows[:at], forged, *rows[at:]]))
    assert not report.ok
    assert report.first_bad_seq == at
    assert report.first_bad_name == "run-approved"
    assert report.reason == f"event {at} (run-approved) was inserted"


COLUMNS = ["name", "actor", "run_id", "at", "data", "leaf_hash"]
events = st.builds(
    UnknownEvent,
    kind=st.sampled_from(NAMES),
    actor=st.text(min_size=1, max_size=10),
    run_id=st.text(max_size=6),
    payload=st.dictionaries(st.text(max_size=6), json_value, max_size=4),
    at=st.datetimes(timezones=st.just(UTC)),
)


def encodable(items: list[AuditEvent]) -> list[StoredLeaf]:
    try:
        return build(items)
    except ValueError:
        assume(False)
        raise


@given(items=st.lists(events, max_size=12))
def test_intact_logs_verify(items: list[AuditEvent]) -> None:
    assert verify(encodable(items)).ok


@given(items=st.lists(events, min_size=2, max_size=12), data=st.data())
def test_any_single_mutation_is_found_at_its_event(
    items: list[AuditEvent], data: st.DataObject
) -> None:
    rows = encodable(items)
    n = len(rows)
    kind = data.draw(st.sampled_from(["edit", "remove", "swap", "insert"]))
    if kind == "edit":
        index = data.draw(st.integers(0, n - 1))
        column = data.draw(st.sampled_from(COLUMNS))
        if column == "data":
            new_data = data.draw(st.dictionaries(st.text(max_size=6), json_value, max_size=4))
            value = canonical_json(new_data).decode()
        else:
            value = data.draw(st.text(max_size=64))
        assume(value != getattr(rows[index], column))
        changes: dict[str, Any] = {column: value}
        rows[index] = dataclasses.replace(rows[index], **changes)
    elif kind == "remove":  # not the newest: truncation needs a checkpoint
        index = data.draw(st.integers(0, n - 2))
        del rows[index]
    elif kind == "swap":
        index, other = sorted(
            data.draw(st.lists(st.integers(0, n - 1), min_size=2, max_size=2, unique=True))
        )
        rows = swap_content(rows, index, other)
    else:
        index = data.draw(st.integers(0, n - 1))
        forged = encodable([data.draw(events)])[0]
        rows = renumber([*rows[:index], forged, *rows[index:]])
        # A careful forger writes the leaf hash the forged row has at its new index.
        rows[index] = dataclasses.replace(rows[index], leaf_hash=rows[index].recomputed_hash())
    report = verify(rows)
    assert not report.ok
    assert report.first_bad_seq == index, (kind, report)
