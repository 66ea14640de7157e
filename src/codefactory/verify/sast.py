"""SAST: bandit and ruff's `S` rules (its port of bandit) over the changed Python files.

Both run inside the sandbox, read-only, over exactly the changed files. Of the repository's
bandit configuration only its rule selection counts (`bandit_config.py`); ruff runs
`--isolated` with that selection applied to its findings. Nothing a repository configures
can hide a changed file: bandit is given every changed file, its default excludes are
cleared (`-x ''`: they match substrings such as `.eggs` or `.git` anywhere in a path), and a
changed file missing from its report is a blocking finding. Inline `# nosec` / `# noqa`
comments are ignored, so an engine cannot silence its own finding (the integrity check
reports an added suppression). What was already there at the base commit is reported, not
blocking (the gate compares), and only a policy waiver lifts a new finding. The two tools
overlap; a finding both report at the same line is kept once, with bandit's severity.

bandit parses with the Python it runs on: `scanners.py` picks the project's (the setup
phase's scanners environment) when there is one. A file that uses syntax newer than that
Python is a blocking finding that names the version it needs; never a silent skip.
"""

from __future__ import annotations

import json
import re
from typing import Any

from codefactory.domain import Change, CheckResult, ExecResult, Finding, Severity
from codefactory.projects import Ecosystem
from codefactory.sandbox.layout import RUFF, SCANNERS_ENV
from codefactory.sandbox.port import Phase, Workspace
from codefactory.verify.bandit_config import read_selection
from codefactory.verify.findings import digest, fingerprinted
from codefactory.verify.lent import CANNOT_START
from codefactory.verify.lint import (
    PYTHON_SUFFIXES,
    changed_path,
    factory_version,
    target_version_options,
)
from codefactory.verify.port import Baseline, Cost
from codefactory.verify.project import CheckPhaseFiles, ProjectBound
from codefactory.verify.sarif import to_sarif
from codefactory.verify.scanners import Scanner, find_bandit

BANDIT_SEVERITY = {"LOW": Severity.LOW, "MEDIUM": Severity.MEDIUM, "HIGH": Severity.HIGH}
# bandit's own severity for the tests ruff also implements, for findings only ruff reports.
LOW_RULES = frozenset(
    "B101 B105 B106 B107 B110 B112 B311 B403 B404 B405 B406 B407 B408 B409 B410 B603 B607".split()
)
HIGH_RULES = frozenset("B201 B324 B501 B502 B503 B504 B602 B605 B609 B701 B413".split())
# ruff's message for syntax an older Python cannot read (`... (syntax was added in Python 3.12)`)
NEWER_SYNTAX = re.compile(r"syntax was added in Python (3\.\d+)")


class SastCheck(ProjectBound):
    """bandit + ruff `S` on the changed Python files; one finding per (rule, file, line)."""

    name: str = "sast"
    baseline = Baseline.FILES
    cost = Cost.CHEAP
    ecosystems = frozenset({Ecosystem.PYTHON})

    def __init__(
        self,
        *,
        python: str = "/usr/bin/python3",
        timeout_s: float = 120.0,
        scanners_env: str = SCANNERS_ENV,
    ) -> None:
        self.python = python
        self.timeout_s = timeout_s
        self.scanners_env = scanners_env

    def config_digest(self) -> str:
        return digest("bandit", factory_version("bandit"), factory_version("ruff"), "sast-2")

    def run(self, workspace: Workspace, change: Change) -> CheckResult:
        """Scan the Python files the change added or modified."""
        paths = [
            f.path
            for f in change.files
            if f.content is not None and f.path.endswith(PYTHON_SUFFIXES)
        ]
        if not paths:
            return self._result([], [], summary="no Python files changed")
        scanner = find_bandit(workspace, python=self.python, scanners_env=self.scanners_env)
        if scanner.problem:
            return self._could_not_run(scanner.problem)
        selection = read_selection(CheckPhaseFiles(workspace))
        bandit = scanner.command(
            ["-f", "json", "-q", "--ignore-nosec", "-x", "", *selection.bandit_args()]
            + ["--", *paths]
        )
        python = self.project_of(workspace).python
        ruff = [RUFF, "check", "--isolated", "--select", "S", "--ignore-noqa", "--no-cache"]
        ruff += target_version_options(python.target_version if python else None)
        ruff += ["--output-format", "json", "--exit-zero", "--", *paths]
        try:
            from_bandit, unscanned = parse_bandit(self._exec(workspace, bandit), paths)
            from_ruff = parse_ruff_s(self._exec(workspace, ruff), paths)
            if unscanned:
                unscanned = self._explain(workspace, scanner, unscanned)
        except ValueError as exc:
            return self._could_not_run(f"{exc} ({scanner.where}, Python {scanner.python})")
        from_ruff = [f for f in from_ruff if selection.allows(f.rule)]
        findings = fingerprinted(merge(from_bandit, from_ruff), change)
        summary = f"{len(findings)} SAST finding(s) in {len(paths)} changed Python file(s)"
        summary += f" (bandit on Python {scanner.python}, {scanner.where})"
        if selection.describe():
            summary += f"; {selection.describe()}"
        return self._result(findings, unscanned, summary=summary)

    def _explain(
        self, workspace: Workspace, scanner: Scanner, unscanned: list[Finding]
    ) -> list[Finding]:
        """Name the Python version a file needs when bandit's interpreter is too old for it
        (ruff, told bandit's version, says which syntax is newer)."""
        paths = [f.path or "" for f in unscanned]
        target = f"py{scanner.version[0]}{scanner.version[1]}"
        command = [RUFF, "check", "--isolated", "--select", "S", "--no-cache"]
        command += ["--target-version", target, "--output-format", "json", "--exit-zero"]
        result = self._exec(workspace, [*command, "--", *paths])
        try:
            items = json.loads(result.stdout) if result.exit_code == 0 else []
        except ValueError:
            items = []
        newer: dict[str, tuple[str, int, str]] = {}
        for item in items if isinstance(items, list) else []:
            if not isinstance(item, dict):
                continue
            match = NEWER_SYNTAX.search(str(item.get("message", "")))
            if match is None:
                continue
            path = changed_path(str(item.get("filename", "")), paths)
            row = int((item.get("location") or {}).get("row") or 0)
            known = newer.get(path)
            if known is None or _minor(match.group(1)) > _minor(known[0]):
                newer[path] = (match.group(1), row, str(item["message"]))
        return [
            _too_new(f, scanner, newer[f.path or ""]) if f.path in newer else f for f in unscanned
        ]

    def _exec(self, workspace: Workspace, command: list[str]) -> ExecResult:
        return workspace.exec(command, phase=Phase.CHECK, timeout_s=self.timeout_s)

    def _result(
        self, findings: list[Finding], unscanned: list[Finding], *, summary: str
    ) -> CheckResult:
        everything = [*findings, *unscanned]
        if unscanned:
            first = unscanned[0]
            summary += f"; {len(unscanned)} file(s) not scanned ({first.path}: {first.message})"
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


def parse_bandit(
    result: ExecResult, paths: list[str] | None = None
) -> tuple[list[Finding], list[Finding]]:
    """(findings, files bandit did not scan) from `bandit -f json`; ValueError if it failed.

    With `paths` (the files bandit was given), a file missing from both its metrics and its
    errors was skipped (an exclude): it is reported as unscanned too.
    """
    report = _json_report("bandit", result, ok_codes=(0, 1))
    try:
        findings = [_bandit_finding(item) for item in report["results"]]
        unscanned = [_unscanned(item) for item in report["errors"]]
        seen = {_path(str(name)) for name in report["metrics"]}
    except (TypeError, KeyError, ValueError) as exc:
        raise ValueError(f"bandit's output is not the JSON expected ({exc!r})") from exc
    seen |= {f.path for f in unscanned if f.path}
    for path in paths or ():
        if path not in seen:
            unscanned.append(
                Finding(
                    check=SastCheck.name,
                    rule="sast-file-unscanned",
                    message="bandit did not scan the file (it is missing from bandit's report)",
                    severity=Severity.HIGH,
                    path=path,
                )
            )
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


def _minor(version: str) -> int:
    return int(version.partition(".")[2] or 0)


def _too_new(finding: Finding, scanner: Scanner, newer: tuple[str, int, str]) -> Finding:
    version, line, message = newer
    text = (
        f"could not scan: the file uses Python {version} syntax (line {line}: {message}) and "
        f"no Python {version} scanner is installed: bandit runs on Python {scanner.python} "
        f"from {scanner.where}"
    )
    return Finding(
        check=finding.check,
        rule=finding.rule,
        message=text,
        severity=finding.severity,
        path=finding.path,
        line=line,
    )


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
