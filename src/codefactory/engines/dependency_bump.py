"""The dependency-bump recipe: move each vulnerable exact pin to its lowest safe version.

Deterministic: the advisories come from the offline OSV database, the pins from every
requirements file and pyproject.toml of the workspace as `advisories.reading` reads them
(includes followed, symbolic links read through: the target file is edited). The lowest safe
version is the lowest fixed version that no advisory affects, the smallest change that closes
the hole. Lock files are not edited (their tool re-locks them); a vulnerable version only a
lock file names is reported, not bumped.

A hash-pinned requirement (`--hash=` options) gets the new version's hashes, fetched from the
package index's JSON API (PyPI's `/pypi/<name>/<version>/json`) in the setup phase, the only
phase that reaches the index; when they cannot be fetched the recipe refuses before writing
anything. It never leaves the old version's hashes beside the new version.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

from codefactory.advisories import (
    Advisory,
    AdvisoryDatabase,
    DependencyReading,
    PinFilesUnlisted,
    read_workspace,
    rewrite_pin,
)
from codefactory.advisories.locks import is_lock_file
from codefactory.advisories.model import PYPI, Located
from codefactory.domain import CheckResult, Proposal, Task
from codefactory.engines.errors import (
    ChecksStillFail,
    EngineCrashed,
    EngineError,
    NoSafeVersion,
    NothingToDo,
)
from codefactory.engines.session import EngineSession
from codefactory.sandbox.layout import system_tool
from codefactory.sandbox.port import Phase, Workspace

INDEX_PAGE = "https://pypi.org/simple/{name}/"
"""The project's page of the package index, read as PEP 691 JSON (`files[].hashes.sha256`)."""
_FETCH_FILES = """\
import json, sys, urllib.request
request = urllib.request.Request(
    sys.argv[1], headers={"Accept": "application/vnd.pypi.simple.v1+json"}
)
with urllib.request.urlopen(request, timeout=30) as answer:
    page = json.load(answer)
files = [[f["filename"], f["hashes"].get("sha256", "")] for f in page["files"]]
print(json.dumps(files))
"""


@dataclass(frozen=True, kw_only=True)
class Bump:
    """One pin moved: which file, which package, from and to, and why."""

    file: str
    package: str
    from_version: str
    to_version: str
    advisories: tuple[Advisory, ...]
    hashed: bool = False
    """A hash-pinned requirement: its hashes are replaced by the new version's."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "package": self.package,
            "from": self.from_version,
            "to": self.to_version,
            "advisories": [a.id for a in self.advisories],
            "aliases": sorted({alias for a in self.advisories for alias in a.aliases}),
            "file": self.file,
        }

    def describe(self) -> str:
        names = ", ".join(name for a in self.advisories for name in a.names)
        hashes = "; hashes from the index" if self.hashed else ""
        return (
            f"{self.package} {self.from_version} → {self.to_version} in {self.file} "
            f"({names}{hashes})"
        )


class DependencyBumpEngine:
    """A recipe engine: bumps vulnerable pins, nothing else."""

    name = "recipe:dependency-bump"
    version = "2"

    def __init__(self, advisories: AdvisoryDatabase, *, fetch_timeout_s: float = 60.0) -> None:
        self.advisories = advisories
        self.fetch_timeout_s = fetch_timeout_s

    def propose(
        self,
        task: Task,
        workspace: Workspace,
        feedback: Sequence[CheckResult],
        session: EngineSession | None = None,
    ) -> Proposal:
        """Rewrite every vulnerable pin (or only `task.context["package"]`) in the workspace."""
        wanted = task.context.get("package")
        reading = self._read(workspace)
        bumps, locked = self._plan(reading, wanted)
        if not bumps:
            self._nothing_changed(reading, wanted, locked, feedback)
        hashes = {(b.package, b.to_version): self._hashes(workspace, b) for b in bumps if b.hashed}
        for path in sorted({bump.file for bump in bumps}):
            pin_file = reading.pin_files[path]
            text = pin_file.decoded.text
            for bump in (b for b in bumps if b.file == path):
                text = rewrite_pin(
                    path,
                    text,
                    bump.package,
                    bump.to_version,
                    only_version=bump.from_version,
                    hashes=hashes.get((bump.package, bump.to_version)),
                )
            workspace.write_file(path, pin_file.decoded.encode(text))
        return Proposal(
            engine=self.name,
            engine_version=self.version,
            rationale=_rationale(bumps, locked),
            details={"bumps": [bump.as_dict() for bump in bumps]},
        )

    def _read(self, workspace: Workspace) -> DependencyReading:
        try:
            return read_workspace(workspace, phase=Phase.ENGINE)
        except PinFilesUnlisted as exc:
            raise EngineCrashed(str(exc)) from exc

    def _plan(self, reading: DependencyReading, wanted: object) -> tuple[list[Bump], list[str]]:
        """The bumps of the pin files, and the vulnerable pins only a lock file names."""
        bumps: dict[tuple[str, str, str], Bump] = {}
        locked: list[str] = []
        editable: dict[tuple[str, str, str], Located] = {
            (path, canonicalize_name(e.pin.name), e.pin.version): e
            for path, pin_file in reading.pin_files.items()
            for e in pin_file.located
        }
        for pin in reading.pins:
            npm = pin.ecosystem != PYPI
            name: str = pin.name if npm else canonicalize_name(pin.name)
            key = (pin.file, name, pin.version)
            asked = str(wanted) if npm else canonicalize_name(str(wanted))
            if key in bumps or (wanted and asked != name):
                continue
            found = self.advisories.vulnerabilities(pin.name, pin.version, ecosystem=pin.ecosystem)
            if not found:
                continue
            entry = None if npm else editable.get(key)
            if entry is None or not entry.version_line:
                where = (
                    "a string it cannot locate"
                    if entry is not None
                    else "a lock file"
                    if npm or is_lock_file(pin.file)
                    else "a setup input the recipe does not rewrite: edit it by hand"
                )
                locked.append(f"{pin.name} {pin.version} in {pin.file} ({where})")
                continue
            safe = self.advisories.lowest_safe_version(pin.name, pin.version)
            if safe is None:
                raise NoSafeVersion(pin.name, pin.version, [a.id for a in found])
            bumps[key] = Bump(
                file=pin.file,
                package=pin.name,
                from_version=pin.version,
                to_version=str(safe),
                advisories=tuple(found),
                hashed=bool(entry.pin.hashes),
            )
        return list(bumps.values()), locked

    def _hashes(self, workspace: Workspace, bump: Bump) -> tuple[str, ...]:
        """The sha256 hash of every file of the new release, from the index's PEP 691 page
        (setup phase); EngineError, before anything is written, when there are none."""
        url = INDEX_PAGE.format(name=canonicalize_name(bump.package))
        result = workspace.exec(
            [system_tool("python3"), "-c", _FETCH_FILES, url],
            phase=Phase.SETUP,
            timeout_s=self.fetch_timeout_s,
        )
        refused = (
            f"{bump.package} is hash-pinned in {bump.file}; the hashes of {bump.to_version} "
            f"could not be fetched from {url}"
        )
        if not result.ok:
            detail = (result.stderr.strip().splitlines() or [f"exit {result.exit_code}"])[-1]
            raise EngineError(f"{refused}: {detail}; the pin is left as it was")
        try:
            files = json.loads(result.stdout)
        except ValueError as exc:
            raise EngineError(f"{refused}: {exc}") from exc
        digests = sorted(
            {digest for name, digest in files if digest and _release_of(name, bump.package)
             == Version(bump.to_version)}
        )  # fmt: skip
        if not digests:
            raise EngineError(f"{refused}: the index lists no file of that release")
        return tuple(f"sha256:{digest}" for digest in digests)

    def _nothing_changed(
        self,
        reading: DependencyReading,
        wanted: object,
        locked: list[str],
        feedback: Sequence[CheckResult],
    ) -> None:
        if feedback:
            summaries = [f"{r.check}: {r.summary or 'failed'}" for r in feedback if not r.passed]
            raise ChecksStillFail(self.name, summaries, what="bump")
        if locked:
            raise EngineError(
                "vulnerable versions the recipe cannot rewrite (re-lock a lock file with its "
                "tool; edit a setup input by hand): " + "; ".join(locked)
            )
        scope = f"package {wanted!s}" if wanted else "any pinned dependency"
        if reading.unreadable:
            spots = "; ".join(str(spot) for spot in reading.unreadable[:5])
            raise EngineError(f"cannot tell whether {scope} is vulnerable: unreadable: {spots}")
        where = ", ".join(reading.files) or "no dependency file in the repository"
        named = [
            f"{p.name} {p.version} in {p.file}"
            for p in reading.pins_of(PYPI)
            if wanted and canonicalize_name(p.name) == canonicalize_name(str(wanted))
        ]
        if named:
            raise NothingToDo(
                f"no known advisory affects {', '.join(named)}: already safe (looked in: {where})"
            )
        raise NothingToDo(f"no known advisory affects {scope} (looked in: {where})")


def _release_of(filename: str, package: str) -> Version | None:
    """The version of a distribution file of `package` (a wheel or an sdist), else None."""
    try:
        if filename.endswith(".whl"):
            name, version, _, _ = parse_wheel_filename(filename)
        else:
            name, version = parse_sdist_filename(filename)
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None
    return version if name == canonicalize_name(package) else None


def _rationale(bumps: Sequence[Bump], locked: Sequence[str]) -> str:
    lines = [
        "Bumped each vulnerable exact pin to the lowest fixed version that no known advisory "
        "affects (offline OSV database):",
        *(f"- {bump.describe()}" for bump in bumps),
    ]
    if locked:
        lines.append("Not bumped (lock files are re-locked by their tool): " + "; ".join(locked))
    return "\n".join(lines)
