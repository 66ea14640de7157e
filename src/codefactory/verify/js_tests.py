"""JavaScript tests check: the repository's own `test` script, offline, judged by exit status.

It runs `npm test`, `pnpm test` or `yarn test` (the manager of the lock file, the same
version corepack fetched in the setup phase) in the check phase, where the installed
packages are at `/workspace/node_modules` (read-only). A repository config's
`test_command` replaces the script in a JavaScript-only repository. No test script is a
failure ("a repository without tests cannot pass"), as for pytest, except beside a Python side
(a package.json for tooling), where it is a named, non-blocking finding; a run that does not
finish fails, and the evidence always holds the output tail.
"""

from __future__ import annotations

from codefactory.domain import Change, CheckResult, Finding, Severity
from codefactory.projects.javascript import (
    COREPACK_HOME,
    NPM,
    corepack_spec,
    no_repository_code_env,
)
from codefactory.projects.model import Ecosystem, JavaScriptProject, Project
from codefactory.sandbox.layout import system_tool
from codefactory.sandbox.port import Phase, Workspace
from codefactory.verify.custom import tail
from codefactory.verify.findings import digest
from codefactory.verify.port import Baseline, Cost
from codefactory.verify.sarif import to_sarif
from codefactory.verify.workspace_project import ProjectDetector, detect_workspace

CHECK_ENV = {
    "CI": "true",
    "COREPACK_HOME": COREPACK_HOME,
    "COREPACK_ENABLE_DOWNLOAD_PROMPT": "0",
    "COREPACK_ENABLE_NETWORK": "0",
    "COREPACK_DEFAULT_TO_LATEST": "0",
    "COREPACK_ENABLE_STRICT": "0",
    "npm_config_update_notifier": "false",
    # a committed .npmrc must not change how the tests run (`script-shell=/bin/true` made a
    # failing test script exit 0); the environment wins over every .npmrc
    "npm_config_script_shell": "/bin/sh",
    "npm_config_node_options": "",
    "npm_config_fund": "false",
    "npm_config_audit": "false",
    "npm_config_cache": "/tmp/.npm",
}
"""The check phase's environment for JavaScript tools: no network, no prompt, CI mode (test
runners run once instead of watching)."""


def run_script_command(javascript: JavaScriptProject, script: str) -> list[str]:
    """argv running package.json's `script` with the repository's own package manager."""
    if javascript.manager == "npm":
        return [NPM, "run", script] if script != "test" else [NPM, "test"]
    return [system_tool("corepack"), corepack_spec(javascript.manager, None), "run", script]


class JsTestsCheck:
    """Runs the repository's test script; exit 0 passes, anything else blocks."""

    name: str = "js-tests"
    port = "tests"
    ecosystems = frozenset({Ecosystem.JAVASCRIPT})
    baseline = Baseline.NONE
    cost = Cost.EXPENSIVE

    def __init__(
        self, *, timeout_s: float = 300.0, detect: ProjectDetector = detect_workspace
    ) -> None:
        self.timeout_s = timeout_s
        self.detect = detect

    def for_project(self, project: Project) -> JsTestsCheck:
        """This check bound to the project the gate detected (no detection of its own)."""
        return JsTestsCheck(timeout_s=self.timeout_s, detect=lambda _: project)

    def config_digest(self) -> str:
        return digest("js-tests", "1")

    def run(self, workspace: Workspace, change: Change) -> CheckResult:
        """Run the test script (or the config's `test_command`) once over the workspace."""
        project = self.detect(workspace)
        javascript = project.javascript
        if javascript is None:
            reason = "no package.json with a lock file: the JavaScript tests cannot run"
            return self._failed("tests-could-not-run", reason, "")
        command = self._command(project, javascript)
        if command is None and project.python is not None:
            # a Python repository's package.json for its tooling: its tests are pytest's
            return self._untested_tooling()
        if command is None:
            reason = "package.json has no test script: a repository without tests cannot pass"
            return self._failed("no-tests", reason, "")
        # the repository's own package-manager code (a yarn-path, a pnpmfile, a .corepack.env)
        # must never stand in for the tests
        env = CHECK_ENV | no_repository_code_env(javascript.manager)
        result = workspace.exec(command, phase=Phase.CHECK, timeout_s=self.timeout_s, env=env)
        shown = " ".join(c.rsplit("/", 1)[-1] if i == 0 else c for i, c in enumerate(command))
        output = tail(result)
        if result.timed_out:
            reason = f"`{shown}` did not finish within {self.timeout_s:g} s"
            return self._failed("tests-timed-out", reason, output)
        if result.limit_hit:
            reason = f"`{shown}` was stopped by the sandbox's {result.limit_hit} limit"
            return self._failed("tests-could-not-run", reason, output)
        if result.exit_code != 0:
            reason = f"`{shown}` exited {result.exit_code}: the tests failed"
            return self._failed("tests-failed", reason, output)
        return self._result([], f"`{shown}` passed (exit 0)\n{output[-500:]}", output)

    def skipped(self, reason: str) -> CheckResult:
        return CheckResult(
            check=self.name,
            passed=False,
            evidence_name="js-tests.sarif",
            evidence=to_sarif(self.name, "", [], notes=[reason], succeeded=False),
            summary=reason,
        )

    def _command(self, project: Project, javascript: JavaScriptProject) -> list[str] | None:
        configured = project.config.test_command
        if configured and project.python is None:
            # in a repository of both ecosystems the config's test command is the Python one
            return list(configured)
        if javascript.test_script is None:
            return None
        return run_script_command(javascript, "test")

    def _untested_tooling(self) -> CheckResult:
        """No test script in a repository that also has a Python side: named, not blocking
        (its tests check judges it; the JavaScript is usually its tooling)."""
        reason = (
            "package.json has no test script; the repository's tests are its Python ones "
            "(the tests check)"
        )
        finding = Finding(
            check=self.name,
            rule="no-js-tests",
            message=reason,
            severity=Severity.LOW,
            blocking=False,
            fingerprint=digest(self.name, "no-js-tests"),
        )
        return self._result([finding], reason, "")

    def _failed(self, rule: str, reason: str, output: str) -> CheckResult:
        finding = Finding(
            check=self.name,
            rule=rule,
            message=f"{reason}\n{output}".strip(),
            severity=Severity.HIGH,
            fingerprint=digest(self.name, rule),
        )
        summary = f"{reason}\n{output[-1500:]}".strip()
        return self._result([finding], summary, output)

    def _result(self, findings: list[Finding], summary: str, output: str) -> CheckResult:
        return CheckResult(
            check=self.name,
            passed=not any(f.blocking for f in findings),
            findings=tuple(findings),
            evidence_name="js-tests.sarif",
            evidence=to_sarif(self.name, "", findings, notes=[output] if output else []),
            summary=summary,
        )
