"""JUnit XML: parsing both root shapes, refusing what is not JUnit, writing a valid report."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codefactory.verify.errors import JunitUnparseable, VerifyError
from codefactory.verify.junit import (
    JunitCase,
    parse_junit,
    synthesise_junit,
    synthesise_skipped,
    with_properties,
)

# What pytest 9 writes with `-o junit_family=xunit1` (recorded from a sandbox run).
PYTEST_XUNIT1 = """<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests">\
<testsuite name="pytest" errors="0" failures="1" skipped="1" tests="3" time="0.020">\
<testcase classname="tests.test_a.TestX" name="test_x" file="tests/test_a.py" line="1">\
<failure message="AssertionError: boom&#10;  second&#10;assert 1 == 2">self = ...</failure>\
</testcase>\
<testcase classname="tests.test_a" name="test_ok" file="tests/test_a.py" line="4" />\
<testcase classname="tests.test_a" name="test_skip" file="tests/test_a.py" line="7">\
<skipped type="pytest.skip" message="later">skipped</skipped></testcase>\
</testsuite></testsuites>"""

# A bare <testsuite> root, xunit2 style (no file attribute), with a collection error.
BARE_SUITE = """<testsuite name="pytest" tests="2" errors="1" failures="0">
  <testcase classname="pkg.tests.test_b" name="test_fine" time="0.1"/>
  <testcase classname="" name="pkg.tests.test_c">
    <error message="collection failure">ImportError: nope</error>
  </testcase>
</testsuite>"""


def test_testsuites_root_counts_and_failed_cases() -> None:
    report = parse_junit(PYTEST_XUNIT1)

    assert (report.tests, report.failures, report.errors, report.skipped) == (3, 1, 0, 1)
    assert report.passed == 1
    (case,) = report.failed
    assert case.kind == "failure"
    assert case.path == "tests/test_a.py"
    assert case.line == 2  # pytest writes the 0-based line of the `def`
    assert case.message == "AssertionError: boom"
    assert case.nodeid == "tests/test_a.py::TestX::test_x"


def test_bare_testsuite_root_and_error_cases() -> None:
    report = parse_junit(BARE_SUITE.encode())

    assert (report.tests, report.failures, report.errors, report.skipped) == (2, 0, 1, 0)
    (case,) = report.failed
    assert (case.kind, case.message, case.line) == ("error", "collection failure", 0)
    assert case.nodeid == "pkg.tests.test_c"


@pytest.mark.parametrize(
    ("classname", "path", "nodeid"),
    [
        ("tests.test_a.TestX", "tests/test_a.py", "tests/test_a.py::TestX::test"),
        ("tests.test_a", "tests/test_a.py", "tests/test_a.py::test"),
        ("test_top", "test_top.py", "test_top.py::test"),
        ("", "", "test"),
    ],
)
def test_path_from_classname_when_no_file_attribute(classname: str, path: str, nodeid: str) -> None:
    case_xml = f'<testcase classname="{classname}" name="test"><failure/></testcase>'
    xml = f"<testsuite>{case_xml}</testsuite>"

    (case,) = parse_junit(xml).failed

    assert case.path == path
    assert case.nodeid == nodeid
    assert case.message == "failure"


def test_similar_module_prefix_is_not_taken_for_the_module() -> None:
    case = JunitCase(
        name="t",
        classname="tests.test_ab",
        path="tests/test_a.py",
        line=0,
        kind="error",
        message="",
    )

    assert case.nodeid == "tests.test_ab::t"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("<testsuite><testcase>", "malformed XML"),
        ("", "malformed XML"),
        ("not xml at all", "malformed XML"),
        ("<html><body/></html>", "root element is <html>"),
    ],
)
def test_unparseable_reports_raise_a_named_error(text: str, reason: str) -> None:
    with pytest.raises(JunitUnparseable) as raised:
        parse_junit(text)

    assert reason in raised.value.reason
    assert isinstance(raised.value, VerifyError)


def test_entity_expansion_is_refused() -> None:
    lol = '<!DOCTYPE t [<!ENTITY a "aaaaaaaaaa">' + "".join(
        f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(9)
    )
    bomb = lol + "]><testsuite><testcase name='&j;'/></testsuite>"

    with pytest.raises(JunitUnparseable):
        parse_junit(bomb)


def test_synthesised_report_is_valid_junit_with_one_error() -> None:
    xml = synthesise_junit(
        suite="codefactory.tests", name="tests-timed-out", message="did not finish in 1 s"
    )

    report = parse_junit(xml)

    assert xml.startswith('<?xml version="1.0"')
    assert (report.tests, report.errors, report.failures) == (1, 1, 0)
    assert report.failed[0].message == "did not finish in 1 s"
    assert report.failed[0].name == "tests-timed-out"


@given(message=st.text(), details=st.text())
def test_synthesised_report_always_parses(message: str, details: str) -> None:
    xml = synthesise_junit(suite="s", name="n", message=message, details=details)

    assert parse_junit(xml).errors == 1


def test_properties_go_into_the_first_testsuite_and_the_report_still_parses() -> None:
    xml = synthesise_junit(suite="s", name="n", message="m")
    marked = with_properties(xml, {"codefactory.selection": "selected", "why": "a\x1bb"})

    assert '<property name="codefactory.selection" value="selected"' in marked
    assert "a?b" in marked  # not an XML character, replaced
    assert parse_junit(marked).errors == 1
    assert with_properties("not xml", {"a": "b"}) == "not xml"


def test_a_suite_that_was_not_run_is_one_skipped_case() -> None:
    report = parse_junit(synthesise_skipped(suite="s", name="not-run", reason="lint blocks"))

    assert (report.tests, report.skipped, report.failed) == (1, 1, ())
