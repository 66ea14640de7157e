"""Store errors.

StoreError
 ├── RunNotFound          no run has that id
 └── InvalidTransition    the state machine does not allow the move (names both states)
"""

from __future__ import annotations


class StoreError(Exception):
    """Base class for persistence failures the caller can act on."""


class RunNotFound(StoreError):
    def __init__(self, run_id: str) -> None:
        super().__init__(f"no run with id {run_id!r}")
        self.run_id = run_id


class InvalidTransition(StoreError):
    def __init__(self, run_id: str, current: str, target: str) -> None:
        super().__init__(f"run {run_id} cannot move from `{current}` to `{target}`")
        self.run_id = run_id
        self.current = current
        self.target = target
