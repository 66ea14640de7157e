"""Software composition analysis: exact pins judged against the offline OSV database.

Reads the same root `requirements*.txt` and `pyproject.toml` the dependency-bump recipe
edits. A file it cannot parse fails the check: an unread pin is not a safe pin. Only what the
change could have introduced blocks: a vulnerable pin in a dependency file the change did not
touch already existed at the base commit, so it is reported without blocking (SARIF
`baselineState` comparison against the base commit is the fuller form of this rule).
"""

from __future__ import annotations

from codefactory.advisories import (
    AdvisoryDatabase,
    AdvisoryError,
    Pin,
    RequirementsInvalid,
    find_pins,
    read_pin_files,
)
from codefactory.domain import Change, CheckResult, Finding, Severity
from codefactory.sandbox.port import Phase, Workspace
from codefactory.verify.sarif import to_sarif

TOOL_NAME = "codefactory-sca"
TOOL_VERSION = "1"
UNPARSEABLE = "sca-unparseable"


class ScaCheck:
    """The SCA gate: one finding per (vulnerable pin, advisory)."""

    name = "sca"

    def __init__(self, advisories: AdvisoryDatabase) -> None:
        self.advisories = advisories

    def run(self, workspace: Workspace, change: Change) -> CheckResult:
        """Judge every exact pin of the workspace, not only the changed files."""
        pins: list[Pin] = []
        findings: list[Finding] = []
        try:
            files = read_pin_files(workspace, phase=Phase.CHECK)
        except AdvisoryError as exc:
            files = {}
            findings.append(_unparseable(exc))
        for name, text in files.items():
            try:
                pins.extend(find_pins(name, text))
            except RequirementsInvalid as exc:
                findings.append(_unparseable(exc))
        vulnerable: list[str] = []
        touched = set(change.paths)
        for pin in pins:
            judged = self._judge(pin, blocking=pin.file in touched)
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

    def _judge(self, pin: Pin, *, blocking: bool) -> list[Finding]:
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
                blocking=blocking,
            )
            for advisory in found
        ]


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
    if vulnerable and not any(f.blocking for f in findings):
        return "pre-existing, not introduced by this change: " + "; ".join(vulnerable)
    if not findings:
        return f"no known advisory affects the {pins} exact pins in {files} dependency files"
    parts = [f"{len(vulnerable)} vulnerable pins: " + "; ".join(vulnerable)] if vulnerable else []
    unparseable = sum(1 for f in findings if f.rule == UNPARSEABLE)
    if unparseable:
        parts.append(f"{unparseable} dependency files could not be parsed")
    return "; ".join(parts)
