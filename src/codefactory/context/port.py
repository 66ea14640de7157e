"""The context port: a connector declares its data class and returns items for a task."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from codefactory.domain import TriggerEvent
from codefactory.sandbox.port import Workspace


@dataclass(frozen=True, kw_only=True)
class ContextItem:
    """One piece of context, tagged with where it came from and how sensitive it is."""

    connector: str
    data_class: str
    name: str
    text: str


class Connector(Protocol):
    """A source of context (repository, ticket, docs, logs)."""

    name: str
    data_class: str
    """`public`, `internal`, `confidential` or `restricted`: decides masking and audit."""

    def fetch(self, trigger: TriggerEvent, workspace: Workspace) -> list[ContextItem]:
        """Items relevant to the trigger; reads only through the sandboxed workspace."""
        ...
