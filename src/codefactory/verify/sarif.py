"""SARIF 2.1.0: the standard shape of every scan's evidence file.

Each result carries `partialFingerprints` and, once the gate compared it with the base
commit, `baselineState` (`new`, `unchanged`, `absent`); a waived finding carries an
accepted external `suppression` naming its approver. Notes about the run itself (a skipped
check, a missing baseline) are `toolExecutionNotifications` of its invocation.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from codefactory.domain import CheckResult, Finding, Severity
from codefactory.verify.findings import FINGERPRINT_KEY

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"


def _result(finding: Finding) -> dict[str, Any]:
    result: dict[str, Any] = {
        "ruleId": finding.rule,
        "level": finding.severity.sarif_level,
        "message": {"text": finding.message},
        "properties": {"severity": finding.severity.value, "blocking": finding.blocking},
    }
    if finding.path:
        region = {"startLine": finding.line} if finding.line > 0 else {}
        location: dict[str, Any] = {"artifactLocation": {"uri": finding.path}}
        if region:
            location["region"] = region
        result["locations"] = [{"physicalLocation": location}]
    if finding.fingerprint:
        result["partialFingerprints"] = {FINGERPRINT_KEY: finding.fingerprint}
    if finding.baseline_state:
        result["baselineState"] = finding.baseline_state
    if finding.waived_by:
        result["suppressions"] = [
            {
                "kind": "external",
                "status": "accepted",
                "justification": f"waived by {finding.waived_by}",
                "properties": {"approver": finding.waived_by},
            }
        ]
    return result


def to_sarif(
    tool_name: str,
    tool_version: str,
    findings: Sequence[Finding],
    *,
    notes: Sequence[str] = (),
    succeeded: bool = True,
) -> str:
    """One SARIF log with one run of `tool_name` holding `findings`, as indented JSON."""
    rules = sorted({f.rule for f in findings})
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": tool_name,
                "version": tool_version,
                "rules": [{"id": rule} for rule in rules],
            }
        },
        "results": [_result(f) for f in findings],
    }
    if notes or not succeeded:
        run["invocations"] = [
            {
                "executionSuccessful": succeeded,
                "toolExecutionNotifications": [{"message": {"text": n}} for n in notes],
            }
        ]
    log = {"$schema": SARIF_SCHEMA, "version": SARIF_VERSION, "runs": [run]}
    return json.dumps(log, indent=2, sort_keys=True) + "\n"


def scan_result(
    check: str, tool: str, version: str, findings: Sequence[Finding], *, summary: str
) -> CheckResult:
    """The result of a scanning check whose evidence is `<check>.sarif` of `tool`: failed
    when any finding blocks."""
    return CheckResult(
        check=check,
        passed=not any(f.blocking for f in findings),
        findings=tuple(findings),
        evidence_name=f"{check}.sarif",
        evidence=to_sarif(tool, version, findings),
        summary=summary,
    )


def could_not_run(
    check: str, tool: str, version: str, reason: str, *, shown: str = ""
) -> CheckResult:
    """A scanning check that could not run: one blocking `<check>-could-not-run` finding;
    the summary names the tool as `shown` (its name by default)."""
    finding = Finding(
        check=check, rule=f"{check}-could-not-run", message=reason, severity=Severity.HIGH
    )
    summary = f"{shown or tool} could not run: {reason}"
    return scan_result(check, tool, version, [finding], summary=summary)


def driver_of(evidence: str) -> tuple[str, str] | None:
    """(name, version) of the tool of a SARIF log, or None when it is not one."""
    try:
        driver = json.loads(evidence)["runs"][0]["tool"]["driver"]
        return str(driver["name"]), str(driver.get("version", ""))
    except (ValueError, KeyError, IndexError, TypeError):
        return None
