"""The policy port: who may start what, on which repository, on whose behalf."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from codefactory.domain import Decision


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
