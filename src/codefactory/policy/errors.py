"""Policy errors.

PolicyError
 ├── PolicyInvalid   a policy file cannot be used: unreadable, not Cedar, or missing annotations
 └── ScopeExceeded   a finished change touches a path its trigger was not granted

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


class ScopeExceeded(PolicyError):
    """A finished change touches `path` in a way (`action`) its trigger was not granted."""

    def __init__(self, path: str, action: str, policy_ids: tuple[str, ...], reason: str) -> None:
        super().__init__(f"scope exceeded at {path} ({action}): {reason}")
        self.path = path
        self.action = action
        self.policy_ids = policy_ids
        self.reason = reason
