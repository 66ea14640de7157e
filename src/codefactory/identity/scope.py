"""The scope of a delegation: the repository, the actions and the paths granted.

Written as an RFC 6749 §3.3 / RFC 8693 §4.2 `scope` string, space-separated tokens:
`repository:<name>`, one token per action (`change:fix_lint`, `forge:commit`, …) and
`path:<glob>` per path pattern, so the token stays a standard access token while carrying
all three. Globs: `*` and `?` stay within a path segment, `**` spans segments.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote, unquote

# What a run's components do for it, in loop order.
RUN_ACTIONS = ("engine:propose", "forge:commit", "package:sign", "review:hand-off")


@dataclass(frozen=True, kw_only=True)
class Scope:
    """What a run may do: in which repository, which actions, on which paths."""

    repository: str
    actions: tuple[str, ...]
    paths: tuple[str, ...]

    def to_claim(self) -> str:
        tokens = [f"repository:{_quote(self.repository)}", *map(_quote, self.actions)]
        return " ".join(tokens + [f"path:{_quote(path)}" for path in self.paths])

    @classmethod
    def from_claim(cls, claim: object) -> Scope:
        """Parse a `scope` claim; ValueError if it is not one this factory writes."""
        if not isinstance(claim, str):
            raise ValueError("the scope claim is not a string")
        repository, actions, paths = None, [], []
        for token in claim.split(" "):
            kind, _, value = token.partition(":")
            if kind == "repository":
                repository = unquote(value)
            elif kind == "path":
                paths.append(unquote(value))
            else:
                actions.append(unquote(token))
        if repository is None:
            raise ValueError("the scope names no repository")
        return cls(repository=repository, actions=tuple(actions), paths=tuple(paths))

    def outside(self, paths: Sequence[str]) -> list[str]:
        """The paths no granted pattern covers."""
        return [path for path in paths if not any(_glob(p).fullmatch(path) for p in self.paths)]


def grant(*, repository: str, kind: str, scope_paths: dict[str, list[str]]) -> Scope:
    """The scope a run authorized for `kind` in `repository` receives."""
    return Scope(
        repository=repository,
        actions=(f"change:{kind}", *RUN_ACTIONS),
        paths=tuple(scope_paths.get(kind, ["**"])),
    )


def _quote(value: str) -> str:
    return quote(value, safe="/*?:._-[]!@+")


@lru_cache(maxsize=256)
def _glob(pattern: str) -> re.Pattern[str]:
    parts: list[str] = []
    for piece in re.split(r"(\*\*/|\*\*|\*|\?)", pattern):
        parts.append(
            {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(piece)
            or re.escape(piece)
        )
    return re.compile("".join(parts))
