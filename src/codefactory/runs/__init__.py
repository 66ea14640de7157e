"""The run state machine: the only place that knows the order of the loop."""

from __future__ import annotations

from typing import TYPE_CHECKING

from codefactory.lazy import lazy_exports

if TYPE_CHECKING:
    from codefactory.runs.loop import RunLoop, RunObserver
    from codefactory.runs.review import ReviewDesk, ReviewNotOpen

__all__ = ["ReviewDesk", "ReviewNotOpen", "RunLoop", "RunObserver"]

__getattr__ = lazy_exports(
    __name__,
    globals(),
    {
        "RunLoop": "codefactory.runs.loop",
        "RunObserver": "codefactory.runs.loop",
        "ReviewDesk": "codefactory.runs.review",
        "ReviewNotOpen": "codefactory.runs.review",
    },
)
