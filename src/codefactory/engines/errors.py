"""Engine errors.

EngineError
 ├── NothingToDo        the recipe found nothing its task asks it to change
 └── EngineCrashed      the engine raised or its command failed unexpectedly
"""

from __future__ import annotations


class EngineError(Exception):
    """Base class for engine failures; the run ends `failed` with the message."""


class NothingToDo(EngineError):
    """The engine found nothing to change for this task."""


class EngineCrashed(EngineError):
    """The engine failed in a way it could not report as a proposal."""
