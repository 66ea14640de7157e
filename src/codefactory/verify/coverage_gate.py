"""An optional floor on the coverage of the changed lines: off unless the operator sets one.

Coverage of the changed lines is evidence for QA and blocks nothing by default. With a
minimum (`PytestCheck(min_changed_line_coverage=…)`, a percentage), a measured coverage
below it is a blocking `changed-lines-under-covered` finding, and a coverage that could not
be measured is `changed-line-coverage-could-not-run` (a "could not judge" finding, blocking
whatever the base did): a floor nobody could check is never a pass. A change with nothing to
measure (no Python source line, no executable changed line) passes it.
"""

from __future__ import annotations

from codefactory.domain import Finding, Severity
from codefactory.verify.changed_coverage import NOTHING_TO_MEASURE, ChangedCoverage, missed_text
from codefactory.verify.findings import digest

UNDER_COVERED = "changed-lines-under-covered"
NOT_MEASURED = "changed-line-coverage-could-not-run"


def coverage_finding(coverage: ChangedCoverage, minimum: float, check: str) -> Finding | None:
    """The finding of `coverage` against a floor of `minimum` percent, or None when it holds."""
    if not coverage.measured:
        if coverage.reason == NOTHING_TO_MEASURE:
            return None
        message = (
            f"the changed lines must be at least {minimum:g}% covered, but their coverage was "
            f"not measured: {coverage.reason}"
        )
        return _finding(check, NOT_MEASURED, message)
    totals = coverage.totals()
    percent = totals["percent"]
    if percent is None or percent >= minimum:
        return None
    message = (
        f"changed lines covered: {totals['covered']} of {totals['executable']} ({percent:g}%), "
        f"under the minimum of {minimum:g}%; missed: {missed_text(coverage.files)}"
    )
    return _finding(check, UNDER_COVERED, message)


def _finding(check: str, rule: str, message: str) -> Finding:
    return Finding(
        check=check,
        rule=rule,
        message=message,
        severity=Severity.HIGH,
        fingerprint=digest(check, rule),
    )
