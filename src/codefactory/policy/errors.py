"""Policy errors.

PolicyError
 └── PolicyInvalid   a policy file cannot be used: unreadable, not Cedar, or missing annotations

A request that policy refuses is not an exception: `authorize` returns a `Decision` with
`allowed=False` and the deciding policies' ids and reasons.
"""

from __future__ import annotations


class PolicyError(Exception):
    """Base class for every policy failure."""


class PolicyInvalid(PolicyError):
    """The policy text at `path` cannot be loaded; `message` says why."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"invalid policy {path}: {message}")
        self.path = path
        self.message = message
