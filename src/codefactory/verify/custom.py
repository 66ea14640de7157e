"""Checks a repository adds in `.codefactory/config.toml` (`add_checks`): its own command,
run offline in the check phase, judged by its exit status.

It can only add judgement, never authority: the command runs in the same sandbox as every
other check (no network, the repository's `/env` and `node_modules` read-only), under the
gate's timeout. A non-zero exit, a timeout or a sandbox limit is one blocking finding whose
message ends with the command's output tail.
"""

from __future__ import annotations

from codefactory.domain import Change, CheckResult, ExecResult, Finding, Severity
from codefactory.projects.model import CustomCheck
from codefactory.sandbox.port import Phase, Workspace
from codefactory.verify.findings import digest
from codefactory.verify.port import Baseline, Cost
from codefactory.verify.sarif import to_sarif

PREFIX = "repo:"
"""Every added check's name starts with it: a repository cannot stand in for a factory check."""
TAIL_CHARS = 2000


class RepositoryCheck:
    """One `add_checks` entry as a gate check named `repo:<name>`."""

    baseline = Baseline.NONE
    cost = Cost.EXPENSIVE
    ecosystems = None

    def __init__(self, spec: CustomCheck, *, source: str = "", timeout_s: float = 300.0) -> None:
        self.spec = spec
        self.name = f"{PREFIX}{spec.name}"
        self.source = source or ".codefactory/config.toml"
        self.timeout_s = timeout_s

    def config_digest(self) -> str:
        return digest("custom", self.spec.name, *self.spec.command)

    def run(self, workspace: Workspace, change: Change) -> CheckResult:
        """Run the command once over the workspace; exit 0 passes, anything else fails."""
        if not self.spec.command:
            return self._failed("custom-check-invalid", "the check names no command", "")
        result = workspace.exec(
            list(self.spec.command), phase=Phase.CHECK, timeout_s=self.timeout_s
        )
        shown = " ".join(self.spec.command)
        if result.timed_out:
            reason = f"`{shown}` did not finish within {self.timeout_s:g} s"
            return self._failed("custom-check-timed-out", reason, tail(result))
        if result.limit_hit:
            reason = f"`{shown}` was stopped by the sandbox's {result.limit_hit} limit"
            return self._failed("custom-check-failed", reason, tail(result))
        if result.exit_code != 0:
            reason = f"`{shown}` exited {result.exit_code}"
            return self._failed("custom-check-failed", reason, tail(result))
        summary = f"`{shown}` (from {self.source}) exited 0"
        return self._result([], summary, notes=[tail(result)] if tail(result) else [])

    def _failed(self, rule: str, reason: str, output: str) -> CheckResult:
        message = f"{reason} (a check added by {self.source})"
        if output:
            message += f":\n{output}"
        finding = Finding(
            check=self.name,
            rule=rule,
            message=message,
            severity=Severity.HIGH,
            fingerprint=digest(self.name, rule),
        )
        return self._result([finding], message[:TAIL_CHARS], notes=[])

    def _result(self, findings: list[Finding], summary: str, *, notes: list[str]) -> CheckResult:
        return CheckResult(
            check=self.name,
            passed=not findings,
            findings=tuple(findings),
            evidence_name=f"{self.name.replace(':', '-')}.sarif",
            evidence=to_sarif(self.name, "", findings, notes=notes),
            summary=summary,
        )


def tail(result: ExecResult, limit: int = TAIL_CHARS) -> str:
    """The end of a command's output (stdout, then stderr), where tools put the reason."""
    text = (result.stdout.rstrip() + "\n" + result.stderr.rstrip()).strip()
    return text[-limit:]


def repository_checks(
    specs: tuple[CustomCheck, ...], *, source: str = "", timeout_s: float = 300.0
) -> list[RepositoryCheck]:
    """One check per `add_checks` entry, in the config's order."""
    return [RepositoryCheck(spec, source=source, timeout_s=timeout_s) for spec in specs]
