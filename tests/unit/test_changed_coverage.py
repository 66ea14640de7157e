"""The line arithmetic of changed-line coverage, its document, and how the package finds it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codefactory.domain import (
    Change,
    ChangeKind,
    CheckResult,
    FileChange,
    Proposal,
    Run,
    RunState,
    TriggerEvent,
)
from codefactory.package.builder import FolderPackageBuilder
from codefactory.package.port import PackageContents
from codefactory.verify.changed_coverage import (
    NOTHING_TO_MEASURE,
    PROPERTY,
    ChangedCoverage,
    Measurement,
    changed_coverage_of,
    changed_lines,
    file_coverage,
    from_json,
    measured,
    missed_text,
    not_measured,
    spans,
    with_changed_coverage,
)
from codefactory.verify.coverage_gate import UNDER_COVERED, coverage_finding
from codefactory.verify.coverage_run import python_lines
from codefactory.verify.diff import with_base
from codefactory.verify.findings import cannot_judge
from codefactory.verify.junit import (
    parse_junit,
    synthesise_passed,
    synthesise_skipped,
    with_properties,
)
from codefactory.verify.tests import PytestCheck


def test_a_changed_line_counts_by_the_statement_it_belongs_to() -> None:
    measurement = Measurement(
        changed=(2, 3, 4, 5, 9, 12),
        statements=frozenset({1, 3, 9, 12}),
        missing=frozenset({9}),
        first_lines={4: 3, 5: 3},  # lines 4 and 5 continue the statement of line 3
    )
    entry = file_coverage(measurement)
    assert entry.changed_lines == (2, 3, 4, 5, 9, 12)
    assert entry.executable == (3, 4, 5, 9, 12)  # 2 is a blank line, a comment or a docstring
    assert entry.covered == (3, 4, 5, 12)
    assert entry.missed == (9,)
    assert entry.percent == 80.0


def test_totals_and_the_line_qa_reads() -> None:
    found = {
        "a.py": Measurement(
            changed=tuple(range(10, 17)),
            statements=frozenset(range(10, 17)),
            missing=frozenset({12, 14}),
        ),
        "b.py": Measurement(changed=(1, 2, 3), statements=frozenset({1, 3}), missing=frozenset()),
    }
    coverage = measured(found)
    assert coverage.totals() == {
        "changed_lines": 10, "executable": 9, "covered": 7, "missed": 2, "percent": 77.78,
    }  # fmt: skip
    assert coverage.summary_line() == "changed lines covered: 7 of 9 (77.78%); missed: a.py:12, 14"


def test_nothing_executable_is_no_percentage() -> None:
    coverage = measured(
        {"a.py": Measurement(changed=(1,), statements=frozenset(), missing=frozenset())}
    )
    assert coverage.totals()["percent"] is None
    assert json.loads(coverage.to_json())["files"]["a.py"]["percent"] is None
    assert coverage.summary_line() == (
        "changed lines covered: none of the changed lines is an executable statement"
    )


def test_not_measured_says_why_and_has_no_numbers() -> None:
    coverage = not_measured(
        "no Python test check ran on this change", skipped={"x.js": "not Python"}
    )
    body = json.loads(coverage.to_json())
    assert (body["status"], body["totals"], body["files"]) == ("not-measured", None, {})
    assert body["not_measured"] == {"x.js": "not Python"}
    assert coverage.summary_line() == (
        "changed lines covered: not measured (no Python test check ran on this change)"
    )


def test_many_missed_lines_are_cut_with_a_count() -> None:
    coverage = measured(
        {"a.py": Measurement(changed=tuple(range(1, 31)), statements=frozenset(range(1, 31)),
                             missing=frozenset(range(1, 31)))}
    )  # fmt: skip
    text = missed_text(coverage.files, limit=3)
    assert text == "a.py:1, 2, 3 (and 27 more)"


@given(st.sets(st.integers(min_value=1, max_value=400)))
def test_spans_round_trip(lines: set[int]) -> None:
    expanded = {n for a, b in spans(lines) for n in range(a, b + 1)}
    assert expanded == lines
    assert all(a <= b for a, b in spans(lines))


@given(st.sets(st.integers(1, 60)), st.sets(st.integers(1, 60)), st.sets(st.integers(1, 60)))
def test_covered_and_missed_partition_the_executable_changed_lines(
    changed: set[int], statements: set[int], missing: set[int]
) -> None:
    entry = file_coverage(
        Measurement(
            changed=tuple(changed), statements=frozenset(statements), missing=frozenset(missing)
        )
    )
    assert set(entry.executable) == changed & statements
    assert set(entry.covered) | set(entry.missed) == set(entry.executable)
    assert not set(entry.covered) & set(entry.missed)
    assert set(entry.missed) == changed & statements & missing


def test_the_document_round_trips_and_a_wrong_one_is_refused() -> None:
    coverage = measured(
        {"a.py": Measurement(changed=(1, 2), statements=frozenset({1, 2}), missing=frozenset({2}))},
        tool="coverage.py 7", scope="whole suite", notes=("n",),
    )  # fmt: skip
    again = from_json(coverage.to_json())
    assert again.to_json() == coverage.to_json()
    body = json.loads(coverage.to_json())
    body["files"]["a.py"]["covered"] = [1, 2]  # covered and missed overlap: not a measurement
    with pytest.raises(ValueError, match="do not add up"):
        from_json(json.dumps(body))
    with pytest.raises(ValueError, match="not a codefactory"):
        from_json("{}")


def _tests_result(coverage: ChangedCoverage | None) -> CheckResult:
    xml = with_properties(synthesise_passed(suite="s", name="t"), {"codefactory.selection": "x"})
    result = CheckResult(check="tests", passed=True, evidence_name="junit.xml", evidence=xml)
    return result if coverage is None else with_changed_coverage(result, coverage)


def test_the_package_reads_the_coverage_the_tests_check_carried() -> None:
    coverage = measured(
        {"a.py": Measurement(changed=(3,), statements=frozenset({3}), missing=frozenset())}
    )
    found = changed_coverage_of([CheckResult(check="lint", passed=True), _tests_result(coverage)])
    assert found.to_json() == coverage.to_json()


def test_without_a_measurement_the_package_says_not_measured() -> None:
    assert changed_coverage_of([]).reason == "no Python test check ran on this change"
    skipped = CheckResult(
        check="tests", passed=True, skipped="not-applicable",
        summary="not applicable: the tests check serves Python projects; this repository is "
        "JavaScript",
    )  # fmt: skip
    assert changed_coverage_of([skipped]).summary_line() == (
        "changed lines covered: not measured (the Python tests did not run: not applicable: "
        "the tests check serves Python projects; this repository is JavaScript)"
    )
    assert "recorded none" in changed_coverage_of([_tests_result(None)]).reason
    bare = CheckResult(
        check="tests", passed=False, evidence_name="junit.xml",
        evidence=synthesise_skipped(suite="s", name="not-run", reason="lint blocks"),
        summary="not run: lint already blocks the change",
    )  # fmt: skip
    assert "not run: lint already blocks" in changed_coverage_of([bare]).reason


def test_a_forged_or_doubled_property_is_not_read_as_a_measurement() -> None:
    coverage = measured(
        {"a.py": Measurement(changed=(3,), statements=frozenset({3}), missing=frozenset({3}))}
    )
    doubled = with_changed_coverage(_tests_result(coverage), coverage)
    assert "more than once" in changed_coverage_of([doubled]).reason
    # a property the tests themselves wrote lands in pytest's own <properties>, never ours
    forged = (
        '<testsuites><testsuite name="pytest" tests="1"><properties>'
        f'<property name="{PROPERTY}" value="{{}}"/></properties>'
        '<testcase classname="t" name="t"/></testsuite></testsuites>'
    )
    result = CheckResult(check="tests", passed=True, evidence_name="junit.xml", evidence=forged)
    ours = with_properties(result.evidence, {"codefactory.selection": "x"})
    assert "recorded none" in changed_coverage_of([CheckResult(
        check="tests", passed=True, evidence_name="junit.xml", evidence=ours
    )]).reason  # fmt: skip


def test_which_files_are_measured_and_which_lines_changed() -> None:
    change = with_base(
        Change(
            files=(
                FileChange(path="pkg/a.py", content=b"x = 1\ny = 2\nz = 3\n"),
                FileChange(path="pkg/new.py", content=b"a = 1\nb = 2\n"),
                FileChange(path="tests/test_a.py", content=b"def test(): pass\n"),
                FileChange(path="conf.yaml", content=b"k: v\n"),
                FileChange(path="pkg/gone.py", content=None),
            )
        ),
        {"pkg/a.py": b"x = 1\ny = 0\nz = 3\n", "pkg/new.py": None, "tests/test_a.py": b"",
         "conf.yaml": b"", "pkg/gone.py": b"q = 1\n"},
    )  # fmt: skip
    wanted, skipped, notes = python_lines(change)
    assert wanted == {"pkg/a.py": (2,), "pkg/new.py": (1, 2)}
    assert skipped == {
        "conf.yaml": "not Python source",
        "tests/test_a.py": "a test file: its lines run as the tests themselves",
    }
    assert notes == []
    plain = Change(files=(FileChange(path="m.py", content=b"a\nb\n"),))
    assert changed_lines(plain, "m.py") == (1, 2)
    assert python_lines(plain)[2] == [
        "m.py: the base version is unknown, every line counts as changed"
    ]


def test_tests_not_run_by_the_gate_say_so_in_the_coverage() -> None:
    result = PytestCheck().skipped("not run: lint already blocks the change")
    assert parse_junit(result.evidence).skipped == 1
    assert changed_coverage_of([result]).summary_line() == (
        "changed lines covered: not measured (the tests were not run: not run: lint already "
        "blocks the change)"
    )


def test_a_coverage_floor_blocks_only_under_it_or_unmeasured() -> None:
    coverage = measured(
        {"a.py": Measurement(changed=(1, 2, 3, 4), statements=frozenset({1, 2, 3, 4}),
                             missing=frozenset({4}))}
    )  # fmt: skip
    assert coverage_finding(coverage, 75, "tests") is None
    under = coverage_finding(coverage, 80, "tests")
    assert under is not None and under.rule == UNDER_COVERED and under.blocking
    assert under.message == (
        "changed lines covered: 3 of 4 (75%), under the minimum of 80%; missed: a.py:4"
    )
    nothing = measured(
        {"a.py": Measurement(changed=(1,), statements=frozenset(), missing=frozenset())}
    )
    assert coverage_finding(nothing, 100, "tests") is None
    assert coverage_finding(not_measured(NOTHING_TO_MEASURE), 100, "tests") is None
    unmeasured = coverage_finding(not_measured("the tests ran in pytest-xdist workers"), 1, "tests")
    assert unmeasured is not None and cannot_judge(unmeasured.rule)
    assert unmeasured.message.endswith("not measured: the tests ran in pytest-xdist workers")


def test_a_package_without_python_tests_says_not_measured_and_why(tmp_path: Path) -> None:
    now = datetime(2026, 11, 30, tzinfo=UTC)
    kind = ChangeKind.GENERAL_CHANGE
    run = Run(
        id="r-js", trigger_id="t-1", kind=kind, repository="web-app", sponsor="alice",
        agent_id="agent:coder", state=RunState.VERIFIED, reason="", base_commit="b" * 40,
        head_commit="a" * 40, branch="factory/r-js", package_dir="", created_at=now,
    )  # fmt: skip
    trigger = TriggerEvent(
        source="jira", kind=kind, external_id="WEB-1", actor="bob", repository="web-app",
        title="Fix", body="", received_at=now, payload_digest="sha256:00",
    )  # fmt: skip
    not_applicable = CheckResult(
        check="tests", passed=True, skipped="not-applicable",
        summary="not applicable: the tests check serves Python projects; this repository is "
        "JavaScript",
    )  # fmt: skip
    contents = PackageContents(
        run=run, trigger=trigger, proposal=Proposal(engine="agent", engine_version="1",
        rationale="fix"), results=(not_applicable,), rounds=1, patch="", commit="a" * 40,
        branch="factory/r-js", forge_repository="/srv/forge/web-app.git",
        change=Change(files=(FileChange(path="src/app.js", content=b"x()\n"),)),
    )  # fmt: skip
    FolderPackageBuilder(tmp_path).build(contents)
    folder = tmp_path / "r-js"
    document = json.loads((folder / "evidence" / "coverage.json").read_text())
    assert (document["status"], document["totals"]) == ("not-measured", None)
    line = (
        "changed lines covered: not measured (the Python tests did not run: not applicable: "
        "the tests check serves Python projects; this repository is JavaScript)"
    )
    assert line in (folder / "summary.md").read_text()
    assert line in json.loads((folder / "cab.json").read_text())["test_plan"]
