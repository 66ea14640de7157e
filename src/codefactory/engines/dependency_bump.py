"""The dependency-bump recipe: move each vulnerable exact pin to its lowest safe version.

Deterministic and offline: the advisories come from the OSV database, the pins from the
workspace's root `requirements*.txt` and `pyproject.toml`. The lowest safe version is the
lowest fixed version that no advisory affects, the smallest change that closes the hole.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from packaging.utils import canonicalize_name

from codefactory.advisories import (
    Advisory,
    AdvisoryDatabase,
    PinFilesUnlisted,
    RequirementsInvalid,
    find_pins,
    read_pin_files,
    rewrite_pin,
)
from codefactory.domain import CheckResult, Proposal, Task
from codefactory.engines.errors import (
    ChecksStillFail,
    EngineCrashed,
    EngineError,
    NoSafeVersion,
    NothingToDo,
)
from codefactory.engines.session import EngineSession
from codefactory.sandbox.port import Phase, Workspace


@dataclass(frozen=True, kw_only=True)
class Bump:
    """One pin moved: which file, which package, from and to, and why."""

    file: str
    package: str
    from_version: str
    to_version: str
    advisories: tuple[Advisory, ...]

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
        return f"{self.package} {self.from_version} → {self.to_version} in {self.file} ({names})"


class DependencyBumpEngine:
    """A recipe engine: bumps vulnerable pins, nothing else."""

    name = "recipe:dependency-bump"
    version = "1"

    def __init__(self, advisories: AdvisoryDatabase) -> None:
        self.advisories = advisories

    def propose(
        self,
        task: Task,
        workspace: Workspace,
        feedback: Sequence[CheckResult],
        session: EngineSession | None = None,
    ) -> Proposal:
        """Rewrite every vulnerable pin (or only `task.context["package"]`) in the workspace."""
        wanted = task.context.get("package")
        files = self._read(workspace)
        bumps = [bump for name, text in files.items() for bump in self._plan(name, text, wanted)]
        if not bumps:
            self._nothing_changed(files, wanted, feedback)
        for name in sorted({bump.file for bump in bumps}):
            text = files[name]
            for bump in (b for b in bumps if b.file == name):
                text = rewrite_pin(
                    name, text, bump.package, bump.to_version, only_version=bump.from_version
                )
            workspace.write_file(name, text.encode("utf-8"))
        return Proposal(
            engine=self.name,
            engine_version=self.version,
            rationale=_rationale(bumps),
            details={"bumps": [bump.as_dict() for bump in bumps]},
        )

    def _read(self, workspace: Workspace) -> dict[str, str]:
        try:
            return read_pin_files(workspace, phase=Phase.ENGINE)
        except PinFilesUnlisted as exc:
            raise EngineCrashed(str(exc)) from exc
        except RequirementsInvalid as exc:
            raise EngineError(str(exc)) from exc

    def _plan(self, name: str, text: str, wanted: object) -> list[Bump]:
        try:
            pins = find_pins(name, text)
        except RequirementsInvalid as exc:
            raise EngineError(str(exc)) from exc
        bumps: dict[tuple[str, str], Bump] = {}
        for pin in pins:
            key = (canonicalize_name(pin.name), pin.version)
            if key in bumps or (wanted and canonicalize_name(str(wanted)) != key[0]):
                continue
            found = self.advisories.vulnerabilities(pin.name, pin.version)
            if not found:
                continue
            safe = self.advisories.lowest_safe_version(pin.name, pin.version)
            if safe is None:
                raise NoSafeVersion(pin.name, pin.version, [a.id for a in found])
            bumps[key] = Bump(
                file=name,
                package=pin.name,
                from_version=pin.version,
                to_version=str(safe),
                advisories=tuple(found),
            )
        return list(bumps.values())

    def _nothing_changed(
        self, files: dict[str, str], wanted: object, feedback: Sequence[CheckResult]
    ) -> None:
        if feedback:
            summaries = [f"{r.check}: {r.summary or 'failed'}" for r in feedback if not r.passed]
            raise ChecksStillFail(self.name, summaries, what="bump")
        scope = f"package {wanted!s}" if wanted else "any pinned dependency"
        where = ", ".join(files) or "no requirements*.txt or pyproject.toml at the root"
        raise NothingToDo(f"no known advisory affects {scope} (looked in: {where})")


def _rationale(bumps: Sequence[Bump]) -> str:
    lines = [
        "Bumped each vulnerable exact pin to the lowest fixed version that no known advisory "
        "affects (offline OSV database):",
        *(f"- {bump.describe()}" for bump in bumps),
    ]
    return "\n".join(lines)
