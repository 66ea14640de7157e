"""What a ticket points at: URLs, numbers and test ids, found in linear time."""

from __future__ import annotations

import time

from codefactory.context.refs import MAX_SCANNED_CHARS, refs_in_text


def test_urls_numbers_and_test_ids_are_found_in_order() -> None:
    text = (
        "See https://bank.atlassian.net/browse/PAY-7, INC0010001, "
        "https://sentry.io/organizations/acme/issues/42/ and tests/unit/test_x.py::test_a "
        "(not xtest_y.py); runbook https://bank.atlassian.net/wiki/spaces/ENG/pages/98765/R"
    )
    assert refs_in_text(text) == [
        ("jira", "PAY-7"),
        ("sentry", "42"),
        ("confluence", "98765"),
        ("servicenow", "INC0010001"),
        ("repository", "tests/unit/test_x.py"),
    ]


def test_a_crafted_path_takes_linear_time() -> None:
    # the red team's input: quadratic in the old expression (32 KB took 16 s)
    started = time.monotonic()
    assert refs_in_text("a/" * 200_000) == []
    assert time.monotonic() - started < 2.0
    late = "x" * MAX_SCANNED_CHARS + " tests/test_late.py"
    assert refs_in_text(late) == []  # only the first MAX_SCANNED_CHARS are read
