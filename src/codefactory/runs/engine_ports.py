"""What the loop asks about engines: whether the registry clears one for a run, and the
per-round session (model access through the gateway, budget, tool gate) it runs with.

Adapters live in `runs/sessions.py` (the gateway and the registry) and in tests.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from codefactory.domain import ChangeKind, Run
from codefactory.engines.session import EngineSession

DATA_CLASSES = ("public", "internal", "confidential", "restricted")
"""Data classes from least to most sensitive (the context engine's names)."""


class EngineClearance(Protocol):
    """The engine registry's answer for one run."""

    def refusal(
        self, engine: str, *, kind: ChangeKind, repository: str, data_class: str, now: datetime
    ) -> str | None:
        """Why `engine` may not take this run (missing, expired, suspended, not approved for
        the kind, the repository or the data class); None when it is cleared."""
        ...

    def max_rounds(self, engine: str) -> int | None:
        """The registry's cap on verify rounds for `engine`; None: the factory's."""
        ...

    def data_classes(self, engine: str) -> tuple[str, ...]:
        """The data classes the registry cleared `engine` for (empty: none, or no entry)."""
        ...


class EngineSessions(Protocol):
    """Opens each round's engine session and closes a run's model access at its end."""

    def open(self, run: Run, engine: str, *, round_number: int) -> EngineSession:
        """The session for one round: model access (for language-model engines), budget,
        the tool gate bound to this run. Raises `EngineError` when the model cannot be
        reached (no upstream configured, the gateway failed to start)."""
        ...

    def model_requests(self, run: Run) -> int:
        """How many model calls the gateway has forwarded for the run so far (0 without
        one): a language-model round that adds none produced its change without a model."""
        ...

    def close(self, run: Run) -> None:
        """Revoke the run's model credential and record what it spent; idempotent."""
        ...


def most_sensitive(classes: list[str]) -> str:
    """The most sensitive of `classes` (unknown names count as `restricted`)."""
    rank = {name: i for i, name in enumerate(DATA_CLASSES)}
    return max(classes, key=lambda name: rank.get(name, len(DATA_CLASSES)), default="internal")
