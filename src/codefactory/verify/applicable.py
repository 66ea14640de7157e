"""Which checks a gate run owes a workspace: by ecosystem, and by the repository's config.

Each check may declare `ecosystems` (a frozenset of `Ecosystem`; None, or no attribute, for
every repository: diff policy, integrity, secrets, SCA). It runs only when the workspace's
project has one of them; a repository with both ecosystems gets both sets. A repository in
which detection finds no ecosystem at all is judged as a Python one, as before: its tests
check fails for want of tests rather than passing with none.

The repository config (`.codefactory/config.toml`) may skip a check only when the check's
port (`port`, else its name) is among the gate's skippable ones (by default `lint` and
`tests`); a skipped check is reported as skipped by repository config, never as passed; a
refused skip runs the check and says so. It can add checks (`add_checks`), never remove
the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields

from codefactory.domain import CheckResult
from codefactory.projects.config import SKIPPABLE_CHECKS as CONFIG_SKIPPABLE
from codefactory.projects.model import Ecosystem, Project
from codefactory.verify.port import Check
from codefactory.verify.sarif import to_sarif

SKIPPABLE_CHECKS: frozenset[str] = CONFIG_SKIPPABLE
"""The ports a repository config may skip (`lint`, `tests`; the config reader refuses any
other): never diff policy, integrity, secrets, SAST, SCA."""
PYTHON_CHECK_NAMES = frozenset({"lint", "sast", "tests"})
"""Checks that predate `ecosystems` and serve Python (ruff, bandit, pytest)."""
_RESULT_FIELDS = frozenset(f.name for f in fields(CheckResult))
NOT_APPLICABLE = "not-applicable"
SKIPPED_BY_CONFIG = "skipped-by-repository-config"


def ecosystems_of(check: Check) -> frozenset[Ecosystem] | None:
    """The ecosystems `check` serves; None: every repository."""
    if hasattr(check, "ecosystems"):
        declared: frozenset[Ecosystem] | None = check.ecosystems
        return declared
    if check.name in PYTHON_CHECK_NAMES:
        return frozenset({Ecosystem.PYTHON})
    return None


def port_of(check: Check) -> str:
    """The port a check serves (`lint` for ruff and ESLint alike), else its name."""
    port = getattr(check, "port", None)
    return port if isinstance(port, str) else check.name


@dataclass(frozen=True)
class Plan:
    """The checks to run, and a result for each check that does not run (by index)."""

    run: list[int] = field(default_factory=list)
    not_run: dict[int, CheckResult] = field(default_factory=dict)
    notes: dict[int, list[str]] = field(default_factory=dict)
    """Notes for the summaries of checks that run (a refused skip)."""


def plan(checks: Sequence[Check], project: Project | None, skippable: frozenset[str]) -> Plan:
    """Decide each check: run, not applicable (by ecosystem) or skipped (by config).

    `project` None (detection failed) runs every check: nothing is skipped on a guess.
    """
    if project is None:
        return Plan(run=list(range(len(checks))))
    present = project.ecosystems or frozenset({Ecosystem.PYTHON})
    skips = project.config.skip_checks
    source = project.config.source or ".codefactory/config.toml"
    result = Plan()
    for i, check in enumerate(checks):
        served = ecosystems_of(check)
        port = port_of(check)
        asked = {check.name, port} & skips
        if served is not None and not served & present:
            result.not_run[i] = not_applicable(check, served, present)
        elif asked and port in skippable:
            result.not_run[i] = skipped_by_config(check, source)
        else:
            result.run.append(i)
            if asked:
                result.notes[i] = [
                    f"{source} asks to skip {sorted(asked)[0]}, which a repository may not "
                    f"skip (only {', '.join(sorted(skippable)) or 'none'}): it ran"
                ]
    return result


def unknown_skips(checks: Sequence[Check], project: Project | None) -> list[str]:
    """Names in the config's `skip_checks` that name no check of this gate."""
    if project is None:
        return []
    known = {c.name for c in checks} | {port_of(c) for c in checks}
    return sorted(project.config.skip_checks - known)


def not_applicable(
    check: Check, served: frozenset[Ecosystem], present: frozenset[Ecosystem]
) -> CheckResult:
    """The result of a check for an ecosystem the repository does not have: its summary says
    why; no evidence file."""
    reason = (
        f"not applicable: the {check.name} check serves {_names(served)} projects; "
        f"this repository is {_names(present)}"
    )
    # no evidence file: every package of one ecosystem would carry empty files of the other
    return _not_run(check, NOT_APPLICABLE, reason, passed=True, evidence=False)


def skipped_by_config(check: Check, source: str) -> CheckResult:
    """The result of a check the repository config skips: not run, and never called passed
    in its summary or evidence."""
    reason = f"skipped by repository config ({source} skip_checks): not run, not passed"
    return _not_run(check, SKIPPED_BY_CONFIG, reason, passed=True)


def _not_run(
    check: Check, kind: str, reason: str, *, passed: bool, evidence: bool = True
) -> CheckResult:
    # no finding to judge and nothing blocks; the evidence says the tool never executed
    sarif = to_sarif(check.name, "", [], notes=[f"{kind}: {reason}"], succeeded=False)
    result = CheckResult(
        check=check.name,
        passed=passed,
        evidence_name=f"{check.name}.sarif" if evidence else "",
        evidence=sarif if evidence else "",
        summary=reason,
        skipped=kind,  # renderers show "skipped", never "pass"
    )
    return result


def _names(ecosystems: frozenset[Ecosystem]) -> str:
    labels = {Ecosystem.PYTHON: "Python", Ecosystem.JAVASCRIPT: "JavaScript"}
    return " and ".join(sorted(labels[e] for e in ecosystems)) or "no known ecosystem"
