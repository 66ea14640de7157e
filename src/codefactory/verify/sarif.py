"""SARIF 2.1.0: the standard shape of every scan's evidence file."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from codefactory.domain import Finding

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
    return result


def to_sarif(tool_name: str, tool_version: str, findings: Sequence[Finding]) -> str:
    """One SARIF log with one run of `tool_name` holding `findings`, as indented JSON."""
    rules = sorted({f.rule for f in findings})
    log = {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": tool_name,
                        "version": tool_version,
                        "rules": [{"id": rule} for rule in rules],
                    }
                },
                "results": [_result(f) for f in findings],
            }
        ],
    }
    return json.dumps(log, indent=2, sort_keys=True) + "\n"
