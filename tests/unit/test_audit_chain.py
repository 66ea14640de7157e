"""The hash chain: canonical leaf encoding, link hashes and tamper detection."""

from __future__ import annotations

import dataclasses
import hashlib
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from codefactory.audit.chain import (
    GENESIS_HASH,
    Link,
    canonical_json,
    chain_link,
    format_at,
    leaf_record,
    link_hash,
    stored_record,
    verify_chain,
)
from codefactory.domain import AuditEvent

T0 = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
NAMES = ["trigger-received", "run-authorized", "run-state-changed", "check-finished"]


def event(index: int, **data: object) -> AuditEvent:
    return AuditEvent(
        name=NAMES[index % len(NAMES)],
        actor="factory",
        run_id=f"run-{index % 3}",
        data={"index": index, **data},
        at=T0 + timedelta(seconds=index),
    )


def build(events: list[AuditEvent]) -> list[Link]:
    links: list[Link] = []
    prev = GENESIS_HASH
    for seq, item in enumerate(events, start=1):
        links.append(chain_link(seq, item, prev))
        prev = links[-1].hash
    return links


def chain(n: int) -> list[Link]:
    return build([event(i) for i in range(n)])


def renumber(links: list[Link]) -> list[Link]:
    return [dataclasses.replace(link, seq=seq) for seq, link in enumerate(links, start=1)]


def swap_content(links: list[Link], a: int, b: int) -> list[Link]:
    """Swap every column but seq of the events at positions a and b."""
    out = list(links)
    out[a] = dataclasses.replace(links[b], seq=links[a].seq)
    out[b] = dataclasses.replace(links[a], seq=links[b].seq)
    return out


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


def test_object_members_sort_by_utf16_code_units() -> None:
    # The RFC 8785 §3.2.3 example: U+1F600 (a surrogate pair) sorts before U+FB33.
    obj = {"\u20ac": 1, "\r": 2, "\U0001f600": 3, "\ufb33": 4, "1": 5, "\u0080": 6, "\u00f6": 7}
    expected = '{"\\r":2,"1":5,"\u0080":6,"\u00f6":7,"\u20ac":1,"\U0001f600":3,"\ufb33":4}'
    assert canonical_json(obj) == expected.encode("utf-8")


def test_no_whitespace_utf8_and_minimal_escapes() -> None:
    value = {"b": [None, True, False, 3, 'é\n\x1f\x7f"\\'], "a": ("x",)}
    assert (
        canonical_json(value)
        == '{"a":["x"],"b":[null,true,false,3,"é\\n\\u001f\x7f\\"\\\\"]}'.encode()
    )


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, {"x": [math.nan]}, "\ud800"])
def test_values_without_a_canonical_form_raise_value_error(bad: object) -> None:
    with pytest.raises(ValueError):
        canonical_json(bad)


@pytest.mark.parametrize("bad", [{1, 2}, {1: "x"}, {"at": T0}, b"bytes"])
def test_values_json_has_no_form_for_raise_type_error(bad: object) -> None:
    with pytest.raises(TypeError):
        canonical_json(bad)


# --- leaves and links ------------------------------------------------------------------


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


def test_link_hash_is_sha256_of_previous_hash_bytes_and_canonical_record() -> None:
    record = leaf_record(1, event(0))
    expected = hashlib.sha256(bytes(32) + canonical_json(record)).hexdigest()
    assert link_hash(GENESIS_HASH, record) == expected
    assert GENESIS_HASH == "0" * 64


def test_link_hash_refuses_a_previous_hash_that_is_not_32_bytes() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        link_hash("00" * 31, {})


def test_stored_record_reads_back_the_leaf() -> None:
    item = event(1, ratio=1.0, tags=("a", "b"))
    link = chain_link(1, item, GENESIS_HASH)
    assert link.data == '{"index":1,"ratio":1,"tags":["a","b"]}'
    assert link_hash(GENESIS_HASH, stored_record(link)) == link.hash


@pytest.mark.parametrize("data", ['{"x": 1}', '{"x":NaN}', "{"])
def test_stored_record_refuses_data_not_in_canonical_form(data: str) -> None:
    with pytest.raises(ValueError):
        stored_record(dataclasses.replace(chain_link(1, event(0), GENESIS_HASH), data=data))


# --- verification ----------------------------------------------------------------------


def test_an_empty_chain_verifies() -> None:
    report = verify_chain([])
    assert (report.ok, report.count, report.head_hash) == (True, 0, GENESIS_HASH)


def test_an_intact_chain_verifies_in_any_input_order() -> None:
    links = chain(10)
    report = verify_chain(reversed(links))
    assert report.ok
    assert report.count == 10
    assert report.first_bad_seq is None
    assert report.reason == "10 events verify"
    assert report.head_hash == links[-1].hash


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
        ("prev_hash", "ab" * 32),
        ("hash", "cd" * 32),
    ],
)
def test_an_edited_column_is_reported_as_altered(column: str, value: str) -> None:
    links = chain(8)
    changes: dict[str, Any] = {column: value}
    links[4] = dataclasses.replace(links[4], **changes)
    report = verify_chain(links)
    assert not report.ok
    assert report.first_bad_seq == 5
    assert report.first_bad_name == links[4].name
    assert report.reason == f"event 5 ({links[4].name}) was altered"


def test_an_edited_last_event_is_detected() -> None:
    links = chain(5)
    links[-1] = dataclasses.replace(links[-1], data='{"index":99}')
    assert verify_chain(links).first_bad_seq == 5


@pytest.mark.parametrize("removed", [0, 3, 8])
def test_a_removed_event_leaves_a_gap(removed: int) -> None:
    links = chain(10)
    del links[removed]
    report = verify_chain(links)
    assert not report.ok
    assert report.first_bad_seq == removed + 1
    assert report.first_bad_name is None
    assert report.reason == f"event {removed + 1} is missing (removed)"


def test_a_removed_event_is_found_when_the_rest_were_renumbered() -> None:
    links = chain(10)
    del links[6]
    report = verify_chain(renumber(links))
    assert report.first_bad_seq == 7
    assert report.reason == "event 7 is missing (removed, later events renumbered)"


def test_removing_the_newest_events_is_not_visible_to_the_chain_alone() -> None:
    # Truncation is what the signed checkpoints of the Merkle log cover.
    links = chain(10)
    report = verify_chain(links[:7])
    assert (report.ok, report.count, report.head_hash) == (True, 7, links[6].hash)


@pytest.mark.parametrize(("a", "b"), [(0, 1), (2, 3), (0, 9), (3, 7), (8, 9)])
def test_swapped_events_are_out_of_order(a: int, b: int) -> None:
    links = chain(10)
    report = verify_chain(swap_content(links, a, b))
    assert not report.ok
    assert report.first_bad_seq == a + 1
    assert report.first_bad_name == links[b].name
    assert report.reason == f"events out of order at {a + 1}"


def test_a_repeated_seq_is_out_of_order() -> None:
    links = chain(5)
    report = verify_chain([*links, links[2]])
    assert report.first_bad_seq == 3
    assert report.reason == "events out of order at 3 (seq repeated)"


@pytest.mark.parametrize("at", [0, 4, 9])
@pytest.mark.parametrize("careful", [True, False])
def test_an_inserted_event_is_reported(at: int, careful: bool) -> None:
    """A forged row put before event `at`, the rest renumbered; a careful forger links it."""
    links = chain(10)
    forged_event = AuditEvent(name="run-approved", actor="mallory", at=T0)
    prev = links[at - 1].hash if at else GENESIS_HASH
    forged = chain_link(at + 1, forged_event, prev)
    if not careful:
        forged = dataclasses.replace(forged, hash="ee" * 32)
    report = verify_chain(renumber([*links[:at], forged, *links[at:]]))
    assert not report.ok
    assert report.first_bad_seq == at + 1
    assert report.first_bad_name == "run-approved"
    assert report.reason == f"event {at + 1} (run-approved) was inserted"


def test_a_forged_event_with_a_bogus_link_is_reported_as_inserted() -> None:
    links = chain(6)
    forged = dataclasses.replace(links[2], seq=3, name="run-approved", prev_hash="aa" * 32)
    report = verify_chain(renumber([*links[:2], forged, *links[2:]]))
    assert report.reason == "event 3 (run-approved) was inserted"


# --- property: any single mutation is found at the mutated event -----------------------

json_leaf = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8)
json_value = st.recursive(
    json_leaf | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
events = st.builds(
    AuditEvent,
    name=st.sampled_from(NAMES),
    actor=st.text(min_size=1, max_size=10),
    run_id=st.text(max_size=6),
    data=st.dictionaries(st.text(max_size=6), json_value, max_size=4),
    at=st.datetimes(timezones=st.just(UTC)),
)
COLUMNS = ["name", "actor", "run_id", "at", "data", "prev_hash", "hash"]


@given(items=st.lists(events, min_size=1, max_size=12), data=st.data())
def test_intact_chains_verify(items: list[AuditEvent], data: st.DataObject) -> None:
    links = build(items)
    assert verify_chain(data.draw(st.permutations(links))).ok


@given(items=st.lists(events, min_size=2, max_size=12), data=st.data())
def test_any_single_mutation_is_found_at_its_event(
    items: list[AuditEvent], data: st.DataObject
) -> None:
    links = build(items)
    n = len(links)
    kind = data.draw(st.sampled_from(["edit", "remove", "swap", "insert"]))
    if kind == "edit":
        index = data.draw(st.integers(0, n - 1))
        column = data.draw(st.sampled_from(COLUMNS))
        if column == "data":
            new_data = data.draw(st.dictionaries(st.text(max_size=6), json_value, max_size=4))
            value = canonical_json(new_data).decode()
        else:
            value = data.draw(st.text(max_size=64))
        assume(value != getattr(links[index], column))
        changes: dict[str, Any] = {column: value}
        links[index] = dataclasses.replace(links[index], **changes)
    elif kind == "remove":  # not the newest: truncation needs a checkpoint
        index = data.draw(st.integers(0, n - 2))
        del links[index]
    elif kind == "swap":
        index, other = sorted(
            data.draw(st.lists(st.integers(0, n - 1), min_size=2, max_size=2, unique=True))
        )
        links = swap_content(links, index, other)
    else:
        index = data.draw(st.integers(0, n - 1))
        prev = links[index - 1].hash if index else GENESIS_HASH
        forged = chain_link(index + 1, data.draw(events), prev)
        links = renumber([*links[:index], forged, *links[index:]])
    report = verify_chain(links)
    assert not report.ok
    assert report.first_bad_seq == index + 1, (kind, report)
