"""Software composition analysis: resolved dependencies judged against the offline OSV database.

Reads the root `requirements*.txt` and `pyproject.toml` (exact pins, the files the
dependency-bump recipe edits) and lock files (`uv.lock`, `poetry.lock`, `Pipfile.lock`,
`pylock.toml`). A file it cannot parse fails the check: an unread pin is not a safe pin.
The gate runs the same check on the base commit (cached per commit and database version), so
a vulnerable version that was already there is reported as unchanged, not blocking; a
version the change introduced, or a new file of vulnerable pins, is new and blocks.
"""

from __future__ import annotations

from packaging.utils import canonicalize_name

from codefactory.advisories import (
    AdvisoryDatabase,
    AdvisoryError,
    Pin,
    RequirementsInvalid,
    find_locked,
    find_pins,
    is_lock_file,
    is_pin_file,
    read_pin_files,
)
from codefactory.domain import Change, CheckResult, Finding, Severity
from codefactory.sandbox.port import Phase, Workspace
from codefactory.verify.findings import digest
from codefactory.verify.port import Baseline, Cost
from codefactory.verify.sarif import to_sarif

TOOL_NAME = "codefactory-sca"
TOOL_VERSION = "2"
UNPARSEABLE = "sca-unparseable"


class ScaCheck:
    """The SCA gate: one finding per (vulnerable pin, advisory)."""

    name = "sca"
    baseline = Baseline.REPOSITORY
    cost = Cost.CHEAP

    def __init__(self, advisories: AdvisoryDatabase) -> None:
        self.advisories = advisories

    def config_digest(self) -> str:
        return digest(TOOL_NAME, TOOL_VERSION, self.advisories.digest)

    def run(self, workspace: Workspace, change: Change) -> CheckResult:
        """Judge every resolved version of the workspace, not only the changed files."""
        findings: list[Finding] = []
        try:
            files = _dependency_files(workspace)
        except AdvisoryError as exc:
            files = {}
            findings.append(_unparseable(exc))
        pins: list[Pin] = []
        for name, text in files.items():
            try:
                pins.extend(
                    find_locked(name, text) if is_lock_file(name) else find_pins(name, text)
                )
            except RequirementsInvalid as exc:
                findings.append(_unparseable(exc))
        vulnerable: list[str] = []
        for pin in _distinct(pins):
            judged = self._judge(pin)
            findings.extend(judged)
            if judged:
                ids = ", ".join(f.rule for f in judged)
                vulnerable.append(f"{pin.name}=={pin.version} in {pin.file} ({ids})")
        return CheckResult(
            check=self.name,
            passed=not any(f.blocking for f in findings),
            findings=tuple(findings),
            evidence_name="sca.sarif",
            evidence=to_sarif(TOOL_NAME, TOOL_VERSION, findings),
            summary=_summary(findings, vulnerable, len(pins), len(files)),
        )

    def _judge(self, pin: Pin) -> list[Finding]:
        found = self.advisories.vulnerabilities(pin.name, pin.version)
        safe = self.advisories.lowest_safe_version(pin.name, pin.version) if found else None
        remedy = f"upgrade to {safe}" if safe else "no fixed version is free of every advisory"
        return [
            Finding(
                check=self.name,
                rule=advisory.id,
                message=(
                    f"{pin.name} {pin.version} is affected by {advisory.id}"
                    + (f" ({', '.join(advisory.aliases)})" if advisory.aliases else "")
                    + f": {advisory.summary[:200]}. Fixed in "
                    + (", ".join(advisory.fixed) or "no release")
                    + f"; {remedy}."
                ),
                severity=Severity.HIGH,
                path=pin.file,
                line=pin.line,
                # the same advisory on the same package in the same file, whatever the version:
                # moving from one affected version to another introduces nothing
                fingerprint=digest(self.name, advisory.id, pin.file, canonicalize_name(pin.name)),
            )
            for advisory in found
        ]


def _dependency_files(workspace: Workspace) -> dict[str, str]:
    """The text of each pin or lock file at the workspace root, by name, sorted."""
    return read_pin_files(
        workspace, phase=Phase.CHECK, wanted=lambda name: is_pin_file(name) or is_lock_file(name)
    )


def _distinct(pins: list[Pin]) -> list[Pin]:
    """One pin per (file, package, version): a lock file may list a package per platform."""
    seen: set[tuple[str, str, str]] = set()
    kept: list[Pin] = []
    for pin in pins:
        key = (pin.file, canonicalize_name(pin.name), pin.version)
        if key not in seen:
            seen.add(key)
            kept.append(pin)
    return kept


def _unparseable(exc: AdvisoryError) -> Finding:
    path = exc.path if isinstance(exc, RequirementsInvalid) else ""
    line = exc.line if isinstance(exc, RequirementsInvalid) else 0
    return Finding(
        check=ScaCheck.name,
        rule=UNPARSEABLE,
        message=f"dependencies could not be judged: {exc}",
        severity=Severity.HIGH,
        path=path,
        line=line,
    )


def _summary(findings: list[Finding], vulnerable: list[str], pins: int, files: int) -> str:
    if not findings:
        return f"no known advisory affects the {pins} exact pins in {files} dependency files"
    parts = [f"{len(vulnerable)} vulnerable pins: " + "; ".join(vulnerable)] if vulnerable else []
    unparseable = sum(1 for f in findings if f.rule == UNPARSEABLE)
    if unparseable:
        parts.append(f"{unparseable} dependency files could not be parsed")
    return "; ".join(parts)
