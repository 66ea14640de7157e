"""Which paths a change may touch: the seam between the diff-policy check and policy.

`ScopePolicy` answers allowed or denied per path, with the deciding policy ids and reasons.
`GlobScope`, the default, denies CI pipelines, code ownership and infrastructure by glob; a
Cedar-backed adapter (one entity per touched path, `is_authorized_batch`, `forbid` wins)
fits the same Protocol.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, kw_only=True)
class PathDecision:
    """The answer for one path: allowed or not, which policies decided, and why."""

    path: str
    allowed: bool
    policy_ids: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()


class ScopePolicy(Protocol):
    """Decides, path by path, whether a change may touch it."""

    def decide(self, paths: Sequence[str]) -> list[PathDecision]:
        """One decision per path, in order."""
        ...


class GlobScope:
    """Denies paths matching any of `blocked` (shell globs, `**` across folders)."""

    policy_id = "codefactory-default-scope"

    def __init__(self, blocked: Sequence[str]) -> None:
        self.blocked = tuple(blocked)

    def decide(self, paths: Sequence[str]) -> list[PathDecision]:
        return [self._decide(path) for path in paths]

    def _decide(self, path: str) -> PathDecision:
        matched = [glob for glob in self.blocked if matches(path, glob)]
        if not matched:
            return PathDecision(path=path, allowed=True)
        reason = f"{path} is a CI, ownership or infrastructure path ({', '.join(matched)})"
        return PathDecision(
            path=path, allowed=False, policy_ids=(self.policy_id,), reasons=(reason,)
        )


def matches(path: str, glob: str) -> bool:
    """`fnmatch` where `dir/**` also matches `dir/x/y` and `**/name` also matches `name`."""
    if fnmatch.fnmatchcase(path, glob):
        return True
    if glob.endswith("/**") and path.startswith(glob[:-2]):
        return True
    return glob.startswith("**/") and fnmatch.fnmatchcase(path, glob[3:])
