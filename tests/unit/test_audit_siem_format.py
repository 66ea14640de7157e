"""The SIEM mappings (OCSF activity and status, RFC 5424 escaping and header tokens) and the
witness client's reading of answers, as pure functions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from codefactory.audit.siem_format import SiemEvent, activity, is_failure, ocsf, syslog
from codefactory.audit.witness_client import (
    WitnessConflict,
    WitnessCosigned,
    WitnessRefused,
    _answer,
    request_body,
)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("run-created", 1),
        ("delegation-issued", 1),
        ("context-read", 2),
        ("agent-suspended", 3),
        ("issuer-key-rotated", 3),
        ("delegation-revoked", 4),
        ("check-completed", 99),
    ],
)
def test_activity_follows_the_verb(name: str, expected: int) -> None:
    assert activity(name)[0] == expected


def test_failures_are_named_by_a_word_not_a_substring() -> None:
    assert is_failure("review-refused") and is_failure("witness-failed")
    assert not is_failure("run-started") and not is_failure("unfailedish-x")


def event(**changes: object) -> SiemEvent:
    fields: dict[str, object] = {
        "seq": 7,
        "name": "run-started",
        "actor": "agent:bot",
        "run_id": "",
        "at": datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        "data": {"x": "y" * 7000},
        "leaf_hash": "ab" * 32,
        "log_name": "o/1",
    }
    fields.update(changes)
    return SiemEvent(**fields)  # type: ignore[arg-type]


def test_ocsf_document_and_cut_data() -> None:
    document = ocsf(event(), hostname="h")
    assert document["time"] == 1767323045678
    assert document["actor"]["user"]["type"] == "agent"
    assert document["metadata"]["correlation_uid"] is None
    assert len(document["unmapped"]["data"]) == 6001 and document["unmapped"]["data"].endswith("…")


def test_syslog_header_tokens_and_nilvalue() -> None:
    message = syslog(event(name="x" * 40, data={}), hostname="bad host\u00e9")
    header = message.split(b" [", 1)[0].decode()
    assert header.startswith("<110>1 2026-01-02T03:04:05.678901Z badhost codefactory ")
    assert header.endswith(" " + "x" * 32)
    assert syslog(event(), hostname="")[:60].split(b" ")[2] == b"-"


def test_witness_answers_are_read_strictly() -> None:
    assert _answer(200, "text/plain", "\u2014 w abc\n".encode()) == WitnessCosigned(
        ("\u2014 w abc",)
    )
    assert _answer(409, "text/x.tlog.size", b"12\n") == WitnessConflict(12)
    for body in (b"12", b"012\n", b"-1\n", b"1\n2\n"):
        refused = _answer(409, "text/x.tlog.size", body)
        assert isinstance(refused, WitnessRefused) and refused.kind == "malformed"
    assert _answer(409, "text/plain", b"no").kind == "inconsistent"  # type: ignore[union-attr]
    assert _answer(422, "text/plain", b"bad proof").kind == "inconsistent"  # type: ignore[union-attr]
    assert _answer(403, "text/plain", b"").kind == "refused"  # type: ignore[union-attr]
    assert _answer(200, "text/plain", b"\n").kind == "malformed"  # type: ignore[union-attr]
    assert request_body(3, [bytes(32)], "n\n\n\u2014 k x\n").startswith(
        b"old 3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\nn\n"
    )
