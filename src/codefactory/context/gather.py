"""Context for the ticket, gathered before the engine starts.

`gather_for_ticket` fetches what the ticket points at (`context.refs`), follows each item's
`related` citations one level (a Sentry event's stack frames to the repository files they
name, a Jira issue's links to its pages), adds log lines matching the error when a logs
source is on, and stops at the character budget (about four characters a token). Every
read goes through the run's governed connectors (policy, masking, audit); a read that fails
is noted and the rest goes on: a missing source never stops the run, and never widens it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from codefactory.context.errors import ContextError
from codefactory.context.port import Connector, ContextItem
from codefactory.context.refs import Ref, parse_citation, trigger_refs, unique
from codefactory.domain import TriggerEvent

CHARS_PER_TOKEN = 4
LOG_LINES = 5
FOLLOWED_PER_ITEM = 5


@dataclass(frozen=True, kw_only=True)
class Gathered:
    """What was gathered for a task: the items in order, and what was left out and why."""

    items: tuple[ContextItem, ...] = ()
    left_out: tuple[str, ...] = ()
    """Citations dropped for the budget."""
    failures: tuple[str, ...] = ()
    """`source:ref: kind: message` of each read that did not happen."""

    def task_context(self) -> dict[str, str]:
        """The task's context: citation → the item's title and text (masked, marked as
        quoted material from the named source)."""
        return {
            item.citation: f"{item.title}\n\n{item.text}".strip() if item.title else item.text
            for item in self.items
        }

    def citations(self) -> list[dict[str, Any]]:
        """One record per item for the change package's design rationale."""
        return [
            {
                "source": item.source,
                "id": item.id,
                "title": item.title,
                "uri": item.uri,
                "data_class": item.data_class,
                "masked": dict(item.masked),
                "truncated": item.truncated,
            }
            for item in self.items
        ]


@dataclass
class _Budget:
    chars: int
    items: list[ContextItem] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)

    def take(self, item: ContextItem) -> bool:
        size = len(item.title) + len(item.text)
        if size > self.chars:
            self.left_out.append(item.citation)
            return False
        self.chars -= size
        self.items.append(item)
        return True


def gather_for_ticket(
    trigger: TriggerEvent,
    connectors: Mapping[str, Connector],
    *,
    token_budget: int,
) -> Gathered:
    """The context of `trigger` from the run's governed `connectors` (name → connector),
    within `token_budget` tokens."""
    budget = _Budget(chars=token_budget * CHARS_PER_TOKEN)
    failures: list[str] = []
    seen: set[Ref] = set()

    def fetch(ref: Ref) -> ContextItem | None:
        connector = connectors.get(ref[0])
        if connector is None or ref in seen:
            return None
        seen.add(ref)
        try:
            return connector.fetch(ref[1])
        except ContextError as err:
            failures.append(f"{ref[0]}:{ref[1]}: {err.kind}: {err}")
            return None

    direct = [item for ref in trigger_refs(trigger) if (item := fetch(ref)) is not None]
    followed: list[ContextItem] = []
    for item in direct:
        budget.take(item)
        pointers = [ref for c in item.related if (ref := parse_citation(c)) is not None]
        for ref in unique(pointers)[:FOLLOWED_PER_ITEM]:
            found = fetch(ref)
            if found is not None:
                followed.append(found)
    for item in followed:
        budget.take(item)
    for item in _log_lines(trigger, direct, connectors, failures):
        budget.take(item)
    return Gathered(
        items=tuple(budget.items), left_out=tuple(budget.left_out), failures=tuple(failures)
    )


def _log_lines(
    trigger: TriggerEvent,
    direct: list[ContextItem],
    connectors: Mapping[str, Connector],
    failures: list[str],
) -> list[ContextItem]:
    """Log lines matching the error (the first Sentry item's title, else the ticket's)."""
    logs = connectors.get("datadog")
    if logs is None:
        return []
    errors = [item.title for item in direct if item.source == "sentry" and item.title]
    query = (errors[0] if errors else trigger.title).strip()
    if not query:
        return []
    try:
        return logs.search(query, limit=LOG_LINES)
    except ContextError as err:
        failures.append(f"datadog:search: {err.kind}: {err}")
        return []
