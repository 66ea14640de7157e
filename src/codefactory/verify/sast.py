"""SAST: bandit and ruff's `S` rules (its port of bandit) over the changed Python files.

Both run inside the sandbox with the factory's settings rather than the
repository's: a change cannot relax the scan by editing `[tool.bandit]` or ruff's
`per-file-ignores`, and inline `# nosec` / `# noqa` comments are ignored, so an engine cannot
silence its own finding. What was already there at the base commit is reported, not blocking
(the gate compares), and only a policy waiver lifts a new finding. The two tools overlap;
a finding both report at the same line is kept once, with bandit's severity.
"""

from __future__ import annotations

import json
from typing import Any

from codefactory.domain import Change, CheckResult, ExecResult, Finding, Severity
from codefactory.sandbox.layout import RUFF
from codefactory.sandbox.port import Phase, Workspace
from codefactory.verify.findings import digest, fingerprinted
from codefactory.verify.lent import CANNOT_START, scanner_command
from codefactory.verify.lint import PYTHON_SUFFIXES, changed_path, factory_version
from codefactory.verify.port import Baseline, Cost
from codefactory.verify.sarif import to_sarif

BANDIT_SEVERITY = {"LOW": Severity.LOW, "MEDIUM": Severity.MEDIUM, "HIGH": Severity.HIGH}
# bandit's own severity for the tests ruff also implements, for findings only ruff reports.
LOW_RULES = frozenset(
    "B101 B105 B106 B107 B110 B112 B311 B403 B404 B405 B406 B407 B408 B409 B410 B603 B607".split()
)
HIGH_RULES = frozenset("B201 B324 B501 B502 B503 B504 B602 B605 B609 B701 B413".split())


class SastCheck:
    """bandit + ruff `S` on the changed Python files; one finding per (rule, file, line)."""

    name: str = "sast"
    baseline = Baseline.FILES
    cost = Cost.CHEAP

    def __init__(self, *, python: str = "/usr/bin/python3", timeout_s: float = 120.0) -> None:
        self.python = python
        self.timeout_s = timeout_s

    def config_digest(self) -> str:
        return digest("bandit", factory_version("bandit"), factory_version("ruff"), "sast-1")

    def run(self, workspace: Workspace, change: Change) -> CheckResult:
        """Scan the Python files the change added or modified."""
        paths = [
            f.path
            for f in change.files
            if f.content is not None and f.path.endswith(PYTHON_SUFFIXES)
        ]
        if not paths:
            return self._result([], [], summary="no Python files changed")
        bandit = scanner_command(
            self.python,
            "bandit.cli.main",
            "bandit",
            ["-f", "json", "-q", "--ignore-nosec", "--", *paths],
        )
        ruff = [RUFF, "check", "--isolated", "--select", "S", "--ignore-noqa", "--no-cache"]
        ruff += ["--output-format", "json", "--exit-zero", "--", *paths]
        try:
            from_bandit, unscanned = parse_bandit(self._exec(workspace, bandit))
            from_ruff = parse_ruff_s(self._exec(workspace, ruff), paths)
        except ValueError as exc:
            return self._could_not_run(str(exc))
        findings = fingerprinted(merge(from_bandit, from_ruff), change)
        blocking = len(findings)
        summary = f"{blocking} SAST finding(s) in {len(paths)} changed Python file(s)"
        return self._result(findings, unscanned, summary=summary)

    def _exec(self, workspace: Workspace, command: list[str]) -> ExecResult:
        return workspace.exec(command, phase=Phase.CHECK, timeout_s=self.timeout_s)

    def _result(
        self, findings: list[Finding], unscanned: list[Finding], *, summary: str
    ) -> CheckResult:
        everything = [*findings, *unscanned]
        if unscanned:
            summary += f"; {len(unscanned)} file(s) bandit could not parse"
        return CheckResult(
            check=self.name,
            passed=not any(f.blocking for f in everything),
            findings=tuple(everything),
            evidence_name="sast.sarif",
            evidence=to_sarif("bandit+ruff-S", factory_version("bandit"), everything),
            summary=summary,
        )

    def _could_not_run(self, reason: str) -> CheckResult:
        finding = Finding(
            check=self.name, rule="sast-could-not-run", message=reason, severity=Severity.HIGH
        )
        return self._result([finding], [], summary=f"the SAST scan could not run: {reason}")


def parse_bandit(result: ExecResult) -> tuple[list[Finding], list[Finding]]:
    """(findings, files bandit could not parse) from `bandit -f json`; ValueError if it failed."""
    report = _json_report("bandit", result, ok_codes=(0, 1))
    try:
        findings = [_bandit_finding(item) for item in report["results"]]
        unscanned = [_unscanned(item) for item in report["errors"]]
    except (TypeError, KeyError, ValueError) as exc:
        raise ValueError(f"bandit's output is not the JSON expected ({exc!r})") from exc
    return findings, unscanned


def parse_ruff_s(result: ExecResult, paths: list[str]) -> list[Finding]:
    """Findings of `ruff check --select S --output-format json`; ValueError if it failed.

    A file ruff cannot parse gets `invalid-syntax`, not an `S` code: bandit reports it as
    unscanned.
    """
    items = _json_report("ruff", result, ok_codes=(0,))
    try:
        return [
            _ruff_finding(item, paths) for item in items if str(item["code"] or "").startswith("S")
        ]
    except (TypeError, KeyError, ValueError) as exc:
        raise ValueError(f"ruff's output is not the JSON expected ({exc!r})") from exc


def merge(from_bandit: list[Finding], from_ruff: list[Finding]) -> list[Finding]:
    """Both tools' findings, one per (rule, path, line), bandit's first."""
    seen = {(f.rule, f.path, f.line) for f in from_bandit}
    return [*from_bandit, *(f for f in from_ruff if (f.rule, f.path, f.line) not in seen)]


def _json_report(tool: str, result: ExecResult, *, ok_codes: tuple[int, ...]) -> Any:
    if result.timed_out:
        raise ValueError(f"{tool} did not finish in time")
    if result.exit_code == CANNOT_START or result.exit_code not in ok_codes:
        tail = (result.stderr.strip() or result.stdout.strip() or "no output")[-600:]
        raise ValueError(f"{tool} exited {result.exit_code}: {tail}")
    try:
        return json.loads(result.stdout)
    except ValueError as exc:
        raise ValueError(f"{tool} did not print JSON ({exc})") from exc


def _path(name: str) -> str:
    return name.removeprefix("./")


def _bandit_finding(item: dict[str, Any]) -> Finding:
    rule = str(item["test_id"])
    return Finding(
        check=SastCheck.name,
        rule=rule,
        message=(
            f"{item['test_name']}: {item['issue_text']} "
            f"(bandit, confidence {str(item['issue_confidence']).lower()})"
        ),
        severity=BANDIT_SEVERITY.get(str(item["issue_severity"]), Severity.MEDIUM),
        path=_path(str(item["filename"])),
        line=int(item["line_number"]),
    )


def _unscanned(item: dict[str, Any]) -> Finding:
    return Finding(
        check=SastCheck.name,
        rule="sast-file-unscanned",
        message=f"bandit could not scan the file: {item['reason']}",
        severity=Severity.HIGH,
        path=_path(str(item["filename"])),
    )


def _ruff_finding(item: dict[str, Any], paths: list[str]) -> Finding:
    code = str(item["code"])
    rule = "B" + code[1:]  # ruff's S codes keep bandit's numbers
    severity = (
        Severity.LOW
        if rule in LOW_RULES
        else Severity.HIGH
        if rule in HIGH_RULES
        else Severity.MEDIUM
    )
    return Finding(
        check=SastCheck.name,
        rule=rule,
        message=f"{item['message']} (ruff {code})",
        severity=severity,
        path=changed_path(str(item["filename"]), paths),
        line=int(item["location"]["row"]),
    )
