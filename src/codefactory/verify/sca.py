"""Software composition analysis: every resolved dependency judged against offline OSV data.

Reads every dependency file of both ecosystems at any depth (`advisories.reading`: pip's
requirements and constraints with their includes, PEP 621/735 pyproject.toml, uv, poetry,
Pipfile and pylock locks, npm, pnpm and yarn locks) and judges each exact pin with the
advisory data of its ecosystem. Nothing is skipped in silence:

- a spot the reader cannot understand is an `sca-unreadable` finding naming the file, line
  and what; its fingerprint is the file and the reason (not the versions), so a committed
  unreadable file the change does not touch is pre-existing at the base commit, while one
  the change adds or edits is new and blocks;
- requirements without an exact version (ranges, URLs, VCS, paths) are counted in the
  summary;
- the summary names the advisory data's record count and age per ecosystem; no data for an
  ecosystem the repository uses (`advisories-missing`) or data older than the operator's limit
  (`advisories-stale`, `VerifySettings.advisories_max_age_days`; data never synced, such as
  the copy shipped with the package, counts as stale) is a finding the gate always blocks.

The gate runs the same check on the base commit (cached per commit and database version), so
a vulnerable version that was already there is reported as unchanged, not blocking.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Literal

from packaging.utils import canonicalize_name

from codefactory.advisories import (
    AdvisoryDatabase,
    DependencyReading,
    Freshness,
    Pin,
    PinFilesUnlisted,
    Unreadable,
    read_workspace,
)
from codefactory.advisories.model import PYPI
from codefactory.domain import Change, CheckResult, Finding, Severity
from codefactory.sandbox.layout import SH
from codefactory.sandbox.port import Phase, Workspace
from codefactory.verify.findings import digest
from codefactory.verify.port import Baseline, Cost
from codefactory.verify.sarif import to_sarif
from codefactory.verify.settings import VerifySettings

TOOL_NAME = "codefactory-sca"
TOOL_VERSION = "3"
UNREADABLE = "sca-unreadable"
COULD_NOT_RUN = "sca-could-not-run"
"""The workspace could not be listed: nothing was judged."""
ADVISORIES_MISSING = "advisories-missing-could-not-run"
"""No advisory record for an ecosystem the repository uses (the `-could-not-run` suffix makes
the gate block it whatever the base commit had; `verify.findings.cannot_judge`)."""
ADVISORIES_STALE = "advisories-stale-could-not-run"
"""The advisory data of an ecosystem the repository uses is older than the limit, or was
never synced."""


class ScaCheck:
    """The SCA gate: one finding per (vulnerable pin, advisory), per unreadable spot, and per
    ecosystem whose advisory data is missing or stale."""

    name = "sca"
    baseline = Baseline.REPOSITORY
    cost = Cost.CHEAP

    def __init__(
        self,
        advisories: AdvisoryDatabase,
        *,
        max_age_days: int | None | Literal["settings"] = "settings",
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """`max_age_days`: the oldest advisory data accepted, in days (None: any age); by
        default `VerifySettings().advisories_max_age_days`. `now` is the clock (for tests)."""
        self.advisories = advisories
        if max_age_days == "settings":
            max_age_days = VerifySettings().advisories_max_age_days
        self.max_age_days = max_age_days
        self.now = now

    def config_digest(self) -> str:
        return digest(TOOL_NAME, TOOL_VERSION, self.advisories.digest)

    def run(self, workspace: Workspace, change: Change) -> CheckResult:
        """Judge every resolved version of the workspace, not only the changed files."""
        try:
            reading = read_workspace(workspace, phase=Phase.CHECK)
        except PinFilesUnlisted as exc:
            finding = Finding(
                check=self.name, rule=COULD_NOT_RUN, message=str(exc), severity=Severity.HIGH
            )
            return _result([finding], f"dependencies could not be listed: {exc}")
        edited = _edited(reading, change)
        findings = [_unreadable(spot, spot.file in edited) for spot in reading.unreadable]
        vulnerable: list[str] = []
        declared = {
            (canonicalize_name(p.name), p.version) for p in reading.pins if p.ecosystem == PYPI
        }
        installed = [
            pin
            for pin in installed_pins(workspace)
            if (canonicalize_name(pin.name), pin.version) not in declared
        ]
        for pin in [*reading.pins, *installed]:
            judged = self._judge(pin)
            findings.extend(judged)
            if judged:
                ids = ", ".join(f.rule for f in judged)
                vulnerable.append(f"{pin.name}=={pin.version} in {pin.file} ({ids})")
        ecosystems = set(reading.ecosystems) | ({PYPI} if installed else set())
        data = {eco: self.advisories.freshness(ecosystem=eco) for eco in sorted(ecosystems)}
        findings.extend(self._freshness(data))
        summary = _summary(reading, vulnerable, data, self.now())
        if installed:
            summary += (
                f"; {len(installed)} more installed in {ENVIRONMENT} than the files pin "
                "(resolved by setup) judged too"
            )
        return _result(findings, summary)

    def _judge(self, pin: Pin) -> list[Finding]:
        ecosystem = pin.ecosystem
        found = self.advisories.vulnerabilities(pin.name, pin.version, ecosystem=ecosystem)
        safe = (
            self.advisories.lowest_safe_version(pin.name, pin.version, ecosystem=ecosystem)
            if found
            else None
        )
        remedy = f"upgrade to {safe}" if safe else "no fixed version is free of every advisory"
        key = canonicalize_name(pin.name) if ecosystem == PYPI else pin.name
        return [
            Finding(
                check=self.name,
                rule=advisory.id,
                message=(
                    f"{pin.name} {pin.version} ({ecosystem}) is affected by {advisory.id}"
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
                fingerprint=digest(self.name, advisory.id, pin.file, *_eco(ecosystem), key),
            )
            for advisory in found
        ]

    def _freshness(self, data: dict[str, Freshness]) -> Iterable[Finding]:
        for ecosystem, fresh in data.items():
            if fresh.records == 0:
                yield _data_finding(
                    ADVISORIES_MISSING,
                    f"advisories-missing: no {ecosystem} advisory record is loaded, so no "
                    f"{ecosystem} dependency can be judged; run `codefactory advisories sync`",
                )
                continue
            if self.max_age_days is None:
                continue
            if fresh.synced_at is None:
                yield _data_finding(
                    ADVISORIES_STALE,
                    f"advisories-stale: the {ecosystem} advisory data ({fresh.records} records "
                    f"from {fresh.source or 'an unknown source'}) was never synced, so its age "
                    f"is unknown; run `codefactory advisories sync`, or set "
                    f"verify.advisories_max_age_days to none to accept it",
                )
                continue
            days = _age_days(fresh.synced_at, self.now())
            if days > self.max_age_days:
                yield _data_finding(
                    ADVISORIES_STALE,
                    f"advisories-stale: the {ecosystem} advisory data was synced "
                    f"{fresh.synced_at.date().isoformat()} ({days} days old), over the limit "
                    f"of {self.max_age_days} days (verify.advisories_max_age_days); run "
                    f"`codefactory advisories sync`",
                )


def _eco(ecosystem: str) -> tuple[str, ...]:
    """PyPI fingerprints stay as they were before npm was judged (cached baselines match)."""
    return () if ecosystem == PYPI else (ecosystem,)


def _edited(reading: DependencyReading, change: Change) -> set[str]:
    """The real files the change touched, directly or through a symbolic link."""
    paths = set(change.paths)
    return paths | {real for link, real in reading.links.items() if link in paths}


def _unreadable(spot: Unreadable, edited: bool) -> Finding:
    note = " (a file this change edits)" if edited else ""
    return Finding(
        check=ScaCheck.name,
        rule=UNREADABLE,
        message=f"dependencies could not be read: {spot}{note}",
        severity=Severity.HIGH,
        path=spot.file,
        line=spot.line,
        # the file and what could not be read, not the line or the versions: an untouched
        # file matches its base-commit self; a file the change edits never does
        fingerprint=digest(ScaCheck.name, UNREADABLE, spot.file, spot.reason, str(edited)),
    )


def _data_finding(rule: str, message: str) -> Finding:
    return Finding(check=ScaCheck.name, rule=rule, message=message, severity=Severity.HIGH)


def _result(findings: list[Finding], summary: str) -> CheckResult:
    return CheckResult(
        check=ScaCheck.name,
        passed=not any(f.blocking for f in findings),
        findings=tuple(findings),
        evidence_name="sca.sarif",
        evidence=to_sarif(TOOL_NAME, TOOL_VERSION, findings),
        summary=summary,
    )


def _age_days(synced_at: datetime, now: datetime) -> int:
    when = synced_at if synced_at.tzinfo else synced_at.replace(tzinfo=UTC)
    return max(0, (now - when).days)


ENVIRONMENT = "/env"
"""Where the setup phase installed the project: what it holds is judged too, however it got
there (a transitive dependency, `uv.toml` overrides, setuptools' dynamic dependencies, a setup
command), so an install the files do not show cannot pass unseen."""
_DIST_INFO = f"{ENVIRONMENT}/lib/python*/site-packages/*.dist-info"


def installed_pins(workspace: Workspace) -> list[Pin]:
    """Every distribution installed in the workspace's `/env` (its `.dist-info` folders,
    PEP 376/PEP 427 names `name-version.dist-info`), as PyPI pins of the file `/env`; none
    when nothing is installed. One listing, no Python run."""
    listing = workspace.exec(
        [SH, "-c", f'for d in {_DIST_INFO}; do [ -d "$d" ] && echo "${{d##*/}}"; done; true'],
        phase=Phase.CHECK,
        timeout_s=60,
    )
    pins: list[Pin] = []
    for entry in sorted(set(listing.stdout.split())):
        name, _, version = entry.removesuffix(".dist-info").rpartition("-")
        if name and version:
            pins.append(Pin(file=ENVIRONMENT, name=name, version=version, line=0))
    return pins


def _summary(
    reading: DependencyReading,
    vulnerable: list[str],
    data: dict[str, Freshness],
    now: datetime,
) -> str:
    counts = Counter(pin.ecosystem for pin in reading.pins)
    per = ", ".join(f"{eco} {counts[eco]}" for eco in sorted(reading.ecosystems | set(counts)))
    judged = f"{len(reading.pins)} exact pins" + (f" ({per})" if per else "")
    parts = [f"judged {judged} in {len(reading.files)} dependency files"]
    if vulnerable:
        parts.append(f"{len(vulnerable)} vulnerable: " + "; ".join(vulnerable))
    else:
        parts.append("no known advisory affects them")
    if reading.unpinned:
        kinds = Counter(item.kind for item in reading.unpinned)
        detail = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
        parts.append(f"{len(reading.unpinned)} requirements not pinned, not judged ({detail})")
    if reading.unreadable:
        files = sorted({spot.file for spot in reading.unreadable})
        parts.append(f"{len(files)} dependency files could not be read: {', '.join(files)}")
    if data:
        parts.append("advisory data: " + "; ".join(_describe(e, f, now) for e, f in data.items()))
    return "; ".join(parts)


def _describe(ecosystem: str, fresh: Freshness, now: datetime) -> str:
    records = f"{ecosystem} {fresh.records:,} records"
    if fresh.synced_at is None:
        return f"{records}, never synced ({fresh.source or 'source unknown'})"
    days = _age_days(fresh.synced_at, now)
    old = f"{days} day old" if days == 1 else f"{days} days old"
    return f"{records}, synced {fresh.synced_at.date().isoformat()} ({old})"
