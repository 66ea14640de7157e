"""The run state machine: the only place that knows the order of the loop."""

from codefactory.runs.loop import RunLoop, RunObserver
from codefactory.runs.review import ReviewDesk, ReviewNotOpen

__all__ = ["ReviewDesk", "ReviewNotOpen", "RunLoop", "RunObserver"]
