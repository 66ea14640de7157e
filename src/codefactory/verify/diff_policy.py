"""Diff policy: the scope of the change itself (paths, size, dependency and tool-config edits).

Nothing here runs in the sandbox: the check reads the change. Paths are judged by a
`ScopePolicy` (the default denies CI pipelines and infrastructure). Inside a run, policy
judges the scope again, authoritatively, when the change is packaged (`policy/scope.py`):
there the check only reports paths out of scope (`deferred`) and the run ends `refused` with
policy's reason rather than `failed`; `codefactory verify` blocks on them. A change larger
than the limits blocks; a dependency change is reported (or blocked, or allowed, by setting);
an edit to the tools' own configuration is reported, since the change's checks ran under it.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from codefactory.domain import Change, CheckResult, Finding, Severity
from codefactory.projects.dependency_files import is_dependency_file
from codefactory.verify.diff import base_of, changed_line_count, hunks
from codefactory.verify.findings import digest
from codefactory.verify.port import Baseline, Cost
from codefactory.verify.sarif import to_sarif
from codefactory.verify.scope import ScopePolicy
from codefactory.verify.settings import DiffPolicySettings

TOOL_CONFIG_FILES = (
    "ruff.toml",
    ".ruff.toml",
    "pytest.ini",
    "tox.ini",
    ".coveragerc",
    ".bandit",
    "mypy.ini",
    ".flake8",
    ".secrets.baseline",
)
_TABLE = re.compile(rb"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")


class DiffPolicyCheck:
    """Judges the change's scope; its findings describe the change, so all of them are new."""

    name: str = "diff_policy"
    baseline = Baseline.NONE
    cost = Cost.CHEAP

    def __init__(
        self, scope: ScopePolicy, settings: DiffPolicySettings, *, deferred: bool = False
    ) -> None:
        self.scope = scope
        self.settings = settings
        self.deferred = deferred
        """Paths out of scope are reported, not blocking: policy refuses them at packaging."""

    def blocking_paths(self) -> DiffPolicyCheck:
        """The same check, blocking paths out of scope itself (outside any run)."""
        return DiffPolicyCheck(self.scope, self.settings)

    def config_digest(self) -> str:
        return digest(self.name, self.settings.model_dump_json())

    def run(self, workspace: object, change: Change) -> CheckResult:
        """Scope, size, dependency and tool-config findings for `change`."""
        findings = [*self._out_of_scope(change), *self._size(change), *self._edits(change)]
        blocking = [f for f in findings if f.blocking]
        lines = changed_line_count(change)
        summary = f"{len(change.files)} file(s), {lines} changed line(s); " + (
            f"{len(blocking)} blocking finding(s)" if blocking else "within scope"
        )
        return CheckResult(
            check=self.name,
            passed=not blocking,
            findings=tuple(findings),
            evidence_name="diff_policy.sarif",
            evidence=to_sarif("codefactory-diff-policy", "1", findings),
            summary=summary,
        )

    def _out_of_scope(self, change: Change) -> list[Finding]:
        later = " (policy decides when the change is packaged)" if self.deferred else ""
        return [
            _finding(
                "path-out-of-scope",
                "; ".join(d.reasons)
                + (f" [{', '.join(d.policy_ids)}]" if d.policy_ids else "")
                + later,
                Severity.HIGH,
                path=d.path,
                blocking=not self.deferred,
            )
            for d in self.scope.decide(list(change.paths))
            if not d.allowed
        ]

    def _size(self, change: Change) -> list[Finding]:
        files, lines = len(change.files), changed_line_count(change)
        limits = self.settings
        found = []
        if files > limits.max_files:
            found.append(f"{files} files changed, more than the limit of {limits.max_files}")
        if lines > limits.max_lines:
            found.append(f"{lines} lines changed, more than the limit of {limits.max_lines}")
        return [_finding("change-too-large", message, Severity.HIGH) for message in found]

    def _edits(self, change: Change) -> list[Finding]:
        found: list[Finding] = []
        mode = self.settings.dependency_changes
        for path in change.paths:
            if mode != "allow" and _is_dependency_file(path):
                severity = Severity.HIGH if mode == "block" else Severity.LOW
                message = f"the change edits the dependency file {path}"
                found.append(
                    _finding("dependency-change", message, severity, path, mode == "block")
                )
            if _edits_tool_config(change, path):
                message = f"the change edits tool configuration in {path}: its checks ran under it"
                found.append(_finding("tool-config-change", message, Severity.LOW, path, False))
        return found


def _finding(
    rule: str, message: str, severity: Severity, path: str = "", blocking: bool = True
) -> Finding:
    return Finding(
        check=DiffPolicyCheck.name,
        rule=rule,
        message=message,
        severity=severity,
        path=path,
        blocking=blocking,
        fingerprint=digest(DiffPolicyCheck.name, rule, path, message),
    )


def _is_dependency_file(path: str) -> bool:
    return is_dependency_file(path)


def _edits_tool_config(change: Change, path: str) -> bool:
    name = PurePosixPath(path).name
    if name in TOOL_CONFIG_FILES:
        return True
    if name not in ("pyproject.toml", "setup.cfg"):
        return False
    new = next((f.content for f in change.files if f.path == path), None)
    known, base = base_of(change, path)
    if not known:
        return True
    tool_lines = _tool_table_lines(new) | {-n for n in _tool_table_lines(base)}
    for hunk in hunks(base, new):
        changed = set(range(hunk.new_start, hunk.new_end))
        changed |= {-n for n in range(hunk.base_start, hunk.base_end)}
        if changed & tool_lines:
            return True
    return False


def _tool_table_lines(content: bytes | None) -> set[int]:
    """Lines inside `[tool.*]` tables (pyproject.toml) or `[tool:*]` sections (setup.cfg)."""
    inside, lines = False, set()
    for number, line in enumerate((content or b"").splitlines(), start=1):
        header = _TABLE.match(line)
        if header is not None:
            table = header.group(1)
            inside = table.startswith((b"tool.", b"tool:")) or table in (b"flake8", b"mypy")
        if inside:
            lines.add(number)
    return lines
