"""The loop's own errors.

RunFailed   ends the run `failed` with its message (an expected failure, already
            explained); raised by the loop and by the wrappers it puts around its ports
            (`runs/delegated.py`, `runs/rounds_budget.py`)
"""

from __future__ import annotations


class RunFailed(Exception):
    """Ends the run `failed` with this message (an expected failure, already explained)."""
