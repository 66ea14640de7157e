"""Coding engines: the Engine port, its errors, and the deterministic recipes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from codefactory.lazy import lazy_exports

if TYPE_CHECKING:
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

__getattr__ = lazy_exports(
    __name__,
    globals(),
    {
        "ChecksStillFail": "codefactory.engines.errors",
        "EngineCrashed": "codefactory.engines.errors",
        "EngineError": "codefactory.engines.errors",
        "NoSafeVersion": "codefactory.engines.errors",
        "NothingToDo": "codefactory.engines.errors",
        "Engine": "codefactory.engines.port",
    },
)
