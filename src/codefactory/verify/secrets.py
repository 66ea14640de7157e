"""Secrets: detect-secrets over the lines the change added or modified.

detect-secrets verifies what it finds against live services (Slack, AWS) unless told not to;
`-n` keeps it offline, and the sandbox has no network anyway. The whole of each changed file
is scanned (detectors read a line's file type), then only findings on changed lines are kept.
An inline `# pragma: allowlist secret` is ignored: an engine must not be able to wave its own
secret through. A finding is named by its type and the secret's hash (never the secret), so a
secret the base commit already held, moved or re-indented, is reported as unchanged.
"""

from __future__ import annotations

import json
from typing import Any

from codefactory.domain import Change, CheckResult, ExecResult, Finding, Severity
from codefactory.sandbox.port import Phase, Workspace
from codefactory.verify.diff import added_lines
from codefactory.verify.findings import digest
from codefactory.verify.lent import CANNOT_START, scanner_command
from codefactory.verify.lint import factory_version
from codefactory.verify.port import Baseline, Cost
from codefactory.verify.sarif import to_sarif

ALLOWLIST_FILTER = "detect_secrets.filters.allowlist.is_line_allowlisted"


class SecretsCheck:
    """detect-secrets `scan -n` on the changed files; findings on changed lines only."""

    name: str = "secrets"
    baseline = Baseline.DIFF
    cost = Cost.CHEAP

    def __init__(self, *, python: str = "/usr/bin/python3", timeout_s: float = 120.0) -> None:
        self.python = python
        self.timeout_s = timeout_s

    def config_digest(self) -> str:
        return digest("detect-secrets", factory_version("detect-secrets"), "secrets-1")

    def run(self, workspace: Workspace, change: Change) -> CheckResult:
        """Scan every added or modified file, text or not (detect-secrets skips binaries)."""
        paths = [f.path for f in change.files if f.content is not None]
        if not paths:
            return self._result([], summary="no files added or modified")
        args = ["scan", "-n", "--disable-filter", ALLOWLIST_FILTER, "--", *paths]
        command = scanner_command(self.python, "detect_secrets.main", "detect-secrets", args)
        result = workspace.exec(command, phase=Phase.CHECK, timeout_s=self.timeout_s)
        try:
            found = parse_detect_secrets(result)
        except ValueError as exc:
            return self._could_not_run(str(exc))
        findings = [f for f in found if _on_changed_line(change, f)]
        summary = f"{len(findings)} secret(s) on the changed lines of {len(paths)} file(s)"
        return self._result(findings, summary=summary)

    def _result(self, findings: list[Finding], *, summary: str) -> CheckResult:
        return CheckResult(
            check=self.name,
            passed=not any(f.blocking for f in findings),
            findings=tuple(findings),
            evidence_name="secrets.sarif",
            evidence=to_sarif("detect-secrets", factory_version("detect-secrets"), findings),
            summary=summary,
        )

    def _could_not_run(self, reason: str) -> CheckResult:
        finding = Finding(
            check=self.name, rule="secrets-could-not-run", message=reason, severity=Severity.HIGH
        )
        return self._result([finding], summary=f"the secrets scan could not run: {reason}")


def parse_detect_secrets(result: ExecResult) -> list[Finding]:
    """Findings of `detect-secrets scan` JSON; ValueError when it did not run or printed else."""
    if result.timed_out:
        raise ValueError("detect-secrets did not finish in time")
    if result.exit_code != 0:
        tail = (result.stderr.strip() or result.stdout.strip() or "no output")[-600:]
        reason = "could not start" if result.exit_code == CANNOT_START else "exited"
        raise ValueError(f"detect-secrets {reason} ({result.exit_code}): {tail}")
    try:
        report = json.loads(result.stdout)
        return [_finding(item) for items in report["results"].values() for item in items]
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ValueError(f"detect-secrets did not print the JSON expected ({exc!r})") from exc


def _finding(item: dict[str, Any]) -> Finding:
    kind, path, hashed = str(item["type"]), str(item["filename"]), str(item["hashed_secret"])
    return Finding(
        check=SecretsCheck.name,
        rule=kind.lower().replace(" ", "-"),
        message=f"{kind} (sha1 of the secret {hashed[:12]}…); remove it and rotate the secret",
        severity=Severity.HIGH,
        path=path.removeprefix("./"),
        line=int(item["line_number"]),
        fingerprint=digest(SecretsCheck.name, kind, path.removeprefix("./"), hashed),
    )


def _on_changed_line(change: Change, finding: Finding) -> bool:
    lines = added_lines(change, finding.path)
    return lines is None or finding.line in lines
