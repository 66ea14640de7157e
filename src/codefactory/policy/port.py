"""The policy port: who may start what, on which repository and paths, on whose behalf."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from codefactory.domain import Decision


@dataclass(frozen=True, kw_only=True)
class EntityRef:
    """A Cedar entity uid by type and id; any id is safe, nothing is parsed from text."""

    type: str
    id: str

    def __str__(self) -> str:
        escaped = self.id.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.type}::"{escaped}"'


@dataclass(frozen=True, kw_only=True)
class AuthorizationRequest:
    """One question: may `principal` do `action` to `resource`, given `context`?"""

    principal: str | EntityRef
    action: str
    resource: str | EntityRef
    context: Mapping[str, Any] = field(default_factory=dict)


class PolicyEngine(Protocol):
    """Answers authorization requests; authority comes only from here."""

    def authorize(
        self,
        *,
        principal: str,
        action: str,
        resource: str,
        context: Mapping[str, Any],
        entities: Sequence[Mapping[str, Any]] = (),
    ) -> Decision:
        """Decide one request; a refusal carries the deciding policies' ids and reasons."""
        ...

    def authorize_batch(
        self,
        requests: Sequence[AuthorizationRequest],
        entities: Sequence[Mapping[str, Any]] = (),
    ) -> list[Decision]:
        """Decide many requests over one entity set (one per touched path), in order."""
        ...
