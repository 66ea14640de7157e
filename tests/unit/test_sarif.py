"""The SARIF 2.1.0 writer: the shape every scan's evidence file takes."""

from __future__ import annotations

import json

from codefactory.domain import Finding, Severity
from codefactory.verify.sarif import to_sarif


def _finding(**overrides: object) -> Finding:
    fields: dict[str, object] = {
        "check": "lint",
        "rule": "F401",
        "message": "`os` imported but unused",
        "severity": Severity.MEDIUM,
        "path": "pkg/mod.py",
        "line": 3,
    }
    fields.update(overrides)
    return Finding(**fields)  # type: ignore[arg-type]


def test_log_has_version_tool_and_rules() -> None:
    log = json.loads(to_sarif("ruff", "0.17.6", [_finding(), _finding(rule="E501")]))

    assert log["version"] == "2.1.0"
    assert log["$schema"].endswith("sarif-2.1.0.json")
    driver = log["runs"][0]["tool"]["driver"]
    assert (driver["name"], driver["version"]) == ("ruff", "0.17.6")
    assert driver["rules"] == [{"id": "E501"}, {"id": "F401"}]


def test_result_has_rule_level_message_and_location() -> None:
    (result,) = json.loads(to_sarif("ruff", "1", [_finding()]))["runs"][0]["results"]

    assert result["ruleId"] == "F401"
    assert result["level"] == "warning"
    assert result["message"] == {"text": "`os` imported but unused"}
    location = result["locations"][0]["physicalLocation"]
    assert location == {"artifactLocation": {"uri": "pkg/mod.py"}, "region": {"startLine": 3}}


def test_severities_map_onto_sarif_levels() -> None:
    findings = [_finding(severity=s) for s in Severity]
    results = json.loads(to_sarif("t", "1", findings))["runs"][0]["results"]

    assert [r["level"] for r in results] == ["note", "warning", "error", "error"]


def test_finding_without_path_has_no_location_and_no_line_no_region() -> None:
    results = json.loads(to_sarif("t", "1", [_finding(path=""), _finding(line=0)]))["runs"][0][
        "results"
    ]

    assert "locations" not in results[0]
    assert "region" not in results[1]["locations"][0]["physicalLocation"]


def test_no_findings_is_a_valid_empty_run() -> None:
    log = json.loads(to_sarif("ruff", "unknown", []))

    assert log["runs"][0]["results"] == []
    assert log["runs"][0]["tool"]["driver"]["rules"] == []


def test_baseline_state_fingerprints_and_notes_are_sarif() -> None:
    from dataclasses import replace

    compared = replace(_finding(), fingerprint="abc", baseline_state="unchanged", blocking=False)
    log = json.loads(to_sarif("ruff", "1", [compared], notes=["no baseline: x"], succeeded=False))
    (result,) = log["runs"][0]["results"]

    assert result["baselineState"] == "unchanged"
    assert result["partialFingerprints"] == {"codefactory/v1": "abc"}
    assert result["properties"]["blocking"] is False
    (invocation,) = log["runs"][0]["invocations"]
    assert invocation["executionSuccessful"] is False
    assert invocation["toolExecutionNotifications"] == [{"message": {"text": "no baseline: x"}}]
