"""Coding engines: the Engine port, its errors, and the deterministic recipes."""

from codefactory.engines.errors import (
    ChecksStillFail,
    EngineCrashed,
    EngineError,
    NoSafeVersion,
    NothingToDo,
)
from codefactory.engines.port import Engine

__all__ = [
    "ChecksStillFail",
    "Engine",
    "EngineCrashed",
    "EngineError",
    "NoSafeVersion",
    "NothingToDo",
]
