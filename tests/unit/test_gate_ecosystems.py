"""The gate's choice of checks: by the workspace's ecosystems, and by the repository config's
skips (lint and tests only, never reported as passed) and added checks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from codefactory.domain import Change, CheckResult, ExecResult, FileChange
from codefactory.projects.model import (
    CustomCheck,
    Ecosystem,
    JavaScriptProject,
    Project,
    PythonProject,
    RepositoryConfig,
)
from codefactory.sandbox.limits import Limits
from codefactory.sandbox.port import Phase, Workspace
from codefactory.verify.applicable import SKIPPABLE_CHECKS, ecosystems_of, port_of
from codefactory.verify.eslint import EslintCheck
from codefactory.verify.gate import Gate, passed
from codefactory.verify.js_tests import JsTestsCheck
from codefactory.verify.settings import VerifySettings

PYTHON = PythonProject(layout="none")
JAVASCRIPT = JavaScriptProject(manager="npm", lock_file="package-lock.json")


@dataclass
class Recorded:
    """A check that records that it ran (the port's smallest implementation)."""

    name: str
    ecosystems: frozenset[Ecosystem] | None = None
    port: str = ""
    ran: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.port = self.port or self.name

    def run(self, workspace: Workspace, change: Change) -> CheckResult:
        self.ran.append(self.name)
        return CheckResult(check=self.name, passed=True, summary="ran")


class Legacy:
    """A check that predates `ecosystems` (ruff, bandit, pytest as they are named)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def run(self, workspace: Workspace, change: Change) -> CheckResult:
        return CheckResult(check=self.name, passed=True, summary="ran")


@dataclass
class Commands:
    """A workspace that answers every command with one exit status and output."""

    exit_code: int = 0
    stdout: str = ""
    run_id: str = "run"
    base_commit: str = "0" * 40
    commands: list[list[str]] = field(default_factory=list)

    def exec(
        self,
        command: Sequence[str],
        *,
        phase: Phase,
        timeout_s: float = 300.0,
        stdin: bytes | None = None,
        env: Mapping[str, str] | None = None,
        limits: Limits | None = None,
        allow_hosts: Sequence[str] = (),
        mounts: Mapping[str, Path] | None = None,
        resolve: Mapping[str, str] | None = None,
    ) -> ExecResult:
        assert phase is Phase.CHECK and not allow_hosts
        self.commands.append(list(command))
        return ExecResult(
            command=tuple(command), exit_code=self.exit_code, stdout=self.stdout, stderr="",
            duration_s=0.0,
        )  # fmt: skip

    def read_file(self, path: str, *, phase: Phase = Phase.ENGINE) -> bytes | None:
        return None

    def write_file(self, path: str, content: bytes) -> None:
        raise AssertionError("a check never writes the workspace")

    def changes(self) -> Change:
        return Change(files=())

    def destroy(self) -> None:
        pass


def checks() -> list[Recorded]:
    python, javascript = frozenset({Ecosystem.PYTHON}), frozenset({Ecosystem.JAVASCRIPT})
    return [
        Recorded("diff_policy"),
        Recorded("ruff", python, port="lint"),
        Recorded("eslint", javascript, port="lint"),
        Recorded("sast", python),
        Recorded("sca"),
        Recorded("pytest", python, port="tests"),
        Recorded("js-tests", javascript, port="tests"),
    ]


def run(project: Project, gate_checks: Sequence[object], **gate: object) -> list[CheckResult]:
    made = Gate(gate_checks, detect=lambda _: project, **gate)  # type: ignore[arg-type]
    return made.run(Commands(), Change(files=()))  # type: ignore[arg-type]


def summaries(results: list[CheckResult]) -> dict[str, str]:
    return {r.check: r.summary for r in results}


def test_a_python_repository_gets_no_javascript_checks_and_is_told_why() -> None:
    results = summaries(run(Project(python=PYTHON), checks()))
    assert results["ruff"] == results["pytest"] == results["sca"] == "ran"
    assert results["eslint"] == (
        "not applicable: the eslint check serves JavaScript projects; this repository is Python"
    )
    assert results["js-tests"].startswith("not applicable: the js-tests check serves JavaScript")
    [eslint] = [r for r in run(Project(python=PYTHON), checks()) if r.check == "eslint"]
    assert (eslint.passed, eslint.findings, eslint.evidence_name) == (True, (), "")
    assert eslint.skipped == "not-applicable"  # shown as skipped, never as a pass


def test_a_javascript_repository_gets_no_python_checks() -> None:
    results = summaries(run(Project(javascript=JAVASCRIPT), checks()))
    assert results["eslint"] == results["js-tests"] == results["diff_policy"] == "ran"
    for name in ("ruff", "sast", "pytest"):
        assert results[name].startswith(f"not applicable: the {name} check serves Python")


def test_a_repository_with_both_ecosystems_gets_both_sets() -> None:
    made = checks()
    results = run(Project(python=PYTHON, javascript=JAVASCRIPT), made)
    assert all(r.summary == "ran" for r in results)
    assert [c.name for c in made if c.ran] == [c.name for c in made]


def test_a_repository_of_no_known_ecosystem_is_judged_as_python() -> None:
    results = summaries(run(Project(), checks()))
    assert results["pytest"] == "ran"  # its tests check then fails for want of tests
    assert results["eslint"].endswith("this repository is Python")


def test_checks_without_ecosystems_serve_python_by_their_known_names() -> None:
    assert ecosystems_of(Legacy("lint")) == {Ecosystem.PYTHON}  # type: ignore[arg-type]
    assert ecosystems_of(Legacy("tests")) == {Ecosystem.PYTHON}  # type: ignore[arg-type]
    assert ecosystems_of(Legacy("secrets")) is None  # type: ignore[arg-type]
    assert ecosystems_of(EslintCheck()) == {Ecosystem.JAVASCRIPT}
    assert (port_of(EslintCheck()), port_of(JsTestsCheck())) == ("lint", "tests")
    results = summaries(run(Project(javascript=JAVASCRIPT), [Legacy("lint"), Legacy("secrets")]))
    assert results["lint"].startswith("not applicable") and results["secrets"] == "ran"


def test_config_skips_lint_and_tests_of_every_ecosystem_never_as_passed() -> None:
    config = RepositoryConfig(skip_checks=frozenset({"lint", "tests"}), source="cfg.toml")
    made = checks()
    results = run(Project(python=PYTHON, javascript=JAVASCRIPT, config=config), made)
    skipped = {r.check: r for r in results if r.summary.startswith("skipped")}
    assert set(skipped) == {"ruff", "eslint", "pytest", "js-tests"}
    for result in skipped.values():
        assert result.summary == (
            "skipped by repository config (cfg.toml skip_checks): not run, not passed"
        )
        assert "skipped-by-repository-config" in result.evidence
        assert '"executionSuccessful": false' in result.evidence
    assert [c.name for c in made if c.ran] == ["diff_policy", "sast", "sca"]


@pytest.mark.parametrize("name", ["sast", "sca", "diff_policy", "secrets", "integrity"])
def test_config_cannot_skip_a_security_check(name: str) -> None:
    assert name not in SKIPPABLE_CHECKS
    config = RepositoryConfig(skip_checks=frozenset({name}))
    results = summaries(run(Project(python=PYTHON, config=config), checks()))
    if name in results:
        assert results[name] == (
            f"ran [.codefactory/config.toml asks to skip {name}, which a repository may not "
            "skip (only lint, tests): it ran]"
        )
    else:
        assert f"the repository config skips {name!r}: no such check" in results["diff_policy"]


def test_the_gate_may_be_told_nothing_is_skippable() -> None:
    config = RepositoryConfig(skip_checks=frozenset({"lint"}))
    results = summaries(run(Project(python=PYTHON, config=config), checks(), skippable=frozenset()))
    assert results["ruff"].startswith("ran [")


def test_added_checks_run_offline_and_fail_on_a_non_zero_exit() -> None:
    config = RepositoryConfig(
        add_checks=(CustomCheck(name="typecheck", command=("npx", "tsc", "--noEmit")),),
        source=".codefactory/config.toml",
    )
    workspace = Commands(exit_code=2, stdout="src/a.ts(1,7): error TS2322: nope\n")
    gate = Gate(
        [Recorded("sca")],
        detect=lambda _: Project(javascript=JAVASCRIPT, config=config),
        settings=VerifySettings(stop_early=False),
    )
    sca, added = gate.run(workspace, Change(files=()))
    assert workspace.commands == [["npx", "tsc", "--noEmit"]]
    assert (added.check, added.passed) == ("repo:typecheck", False)
    [finding] = added.findings
    assert finding.rule == "custom-check-failed" and finding.blocking
    assert finding.message.startswith(
        "`npx tsc --noEmit` exited 2 (a check added by .codefactory/config.toml):\n"
    )
    assert "error TS2322: nope" in added.summary
    assert not passed([sca, added])


def test_a_project_that_cannot_be_detected_runs_every_check() -> None:
    def broken(workspace: Workspace) -> Project:
        raise OSError("find: permission denied")

    made = checks()
    results = Gate(made, detect=broken).run(Commands(), Change(files=()))  # type: ignore[arg-type]
    assert all(c.ran for c in made)
    assert "the project could not be detected (OSError: find: permission denied)" in (
        results[0].summary
    )


def test_javascript_tests_without_a_test_script_cannot_pass() -> None:
    check = JsTestsCheck(detect=lambda _: Project(javascript=JAVASCRIPT))
    result = check.run(Commands(), Change(files=()))  # type: ignore[arg-type]
    assert not result.passed
    assert result.summary == (
        "package.json has no test script: a repository without tests cannot pass"
    )
    assert [f.rule for f in result.findings] == ["no-tests"]


def test_javascript_tests_that_time_out_are_named() -> None:
    project = Project(javascript=JsProject(test_script="jest"))
    result = JsTestsCheck(timeout_s=5, detect=lambda _: project).run(
        TimingOut(),
        Change(files=()),  # type: ignore[arg-type]
    )
    assert [f.rule for f in result.findings] == ["tests-timed-out"]
    assert result.summary.startswith("`npm test` did not finish within 5 s")


def JsProject(**fields: object) -> JavaScriptProject:  # noqa: N802 - reads as the type
    return JavaScriptProject(manager="npm", lock_file="package-lock.json", **fields)  # type: ignore[arg-type]


class TimingOut(Commands):
    def exec(self, command: Sequence[str], **kwargs: object) -> ExecResult:  # type: ignore[override]
        return ExecResult(
            command=tuple(command), exit_code=-9, stdout="still running", stderr="",
            duration_s=5.0, timed_out=True,
        )  # fmt: skip


def test_eslint_configured_but_not_installed_fails_with_the_reason() -> None:
    project = Project(javascript=JsProject(eslint_config="eslint.config.mjs"))
    check = EslintCheck(detect=lambda _: project)
    change = Change(files=(FileChange(path="src/a.js", content=b"const a = 1;\n"),))
    result = check.run(Commands(exit_code=127), change)  # type: ignore[arg-type]
    assert not result.passed
    [finding] = result.findings
    assert finding.rule == "eslint-could-not-run"
    assert finding.message == (
        "ESLint is configured (eslint.config.mjs) but not installed: node_modules/.bin/eslint "
        "is missing (is eslint in package.json's devDependencies and the lock file?)"
    )


def test_eslint_not_configured_runs_nothing() -> None:
    check = EslintCheck(detect=lambda _: Project(javascript=JAVASCRIPT))
    workspace = Commands()
    change = Change(files=(FileChange(path="src/a.js", content=b"const a = 1;\n"),))
    result = check.run(workspace, change)  # type: ignore[arg-type]
    assert (result.passed, result.summary) == (True, "ESLint is not configured: nothing to run")
    assert workspace.commands == []


def test_the_gate_binds_its_detected_project_to_the_javascript_checks() -> None:
    def never(workspace: Workspace) -> Project:
        raise AssertionError("the check detected the project again")

    project = Project(javascript=JsProject(test_script="node --test"))
    workspace = Commands(stdout="# pass 1\n")
    gate = Gate([JsTestsCheck(detect=never)], detect=lambda _: project)
    [result] = gate.run(workspace, Change(files=()))  # type: ignore[arg-type]
    assert result.passed, result.summary
    assert workspace.commands == [["/usr/bin/npm", "test"]]
    assert result.summary.startswith("`npm test` passed (exit 0)\n# pass 1")


def test_a_python_repositorys_tooling_package_json_without_tests_is_named_not_blocking() -> None:
    project = Project(python=PYTHON, javascript=JAVASCRIPT)
    result = JsTestsCheck(detect=lambda _: project).run(Commands(), Change(files=()))  # type: ignore[arg-type]
    assert result.passed
    [finding] = result.findings
    assert (finding.rule, finding.blocking) == ("no-js-tests", False)
    assert result.summary == (
        "package.json has no test script; the repository's tests are its Python ones "
        "(the tests check)"
    )
