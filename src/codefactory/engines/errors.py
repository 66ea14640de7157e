"""Engine errors.

EngineError
 ├── NothingToDo        the recipe found nothing its task asks it to change
 ├── EngineCrashed      the engine raised or its command failed unexpectedly
 ├── NoSafeVersion      no released version of a vulnerable package escapes its advisories
 └── ChecksStillFail    a recipe made its change, checks still fail, and it can do no more
"""

from __future__ import annotations

from collections.abc import Sequence


class EngineError(Exception):
    """Base class for engine failures; the run ends `failed` with the message."""


class NothingToDo(EngineError):
    """The engine found nothing to change for this task."""


class EngineCrashed(EngineError):
    """The engine failed in a way it could not report as a proposal."""


class NoSafeVersion(EngineError):
    """A pinned package is vulnerable and no fixed version is free of every advisory."""

    def __init__(self, package: str, version: str, advisory_ids: Sequence[str]) -> None:
        super().__init__(
            f"{package}=={version} is affected by {', '.join(advisory_ids)} and no fixed "
            "version is free of every known advisory: a human must choose the remedy"
        )
        self.package = package
        self.version = version
        self.advisory_ids = tuple(advisory_ids)


class ChecksStillFail(EngineError):
    """A deterministic recipe cannot improve on its first change; the checks' verdict stands."""

    def __init__(self, recipe: str, summaries: Sequence[str], *, what: str = "change") -> None:
        super().__init__(
            f"{recipe} cannot do better: checks still fail after the {what}: "
            + ("; ".join(summaries) or "no summary")
        )
        self.recipe = recipe
        self.summaries = tuple(summaries)
