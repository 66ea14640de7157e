"""Context for the ticket, gathered before the engine starts.

`gather_for_ticket` fetches what the ticket points at (`context.refs`), follows each item's
`related` citations one level (a Sentry event's stack frames to the repository files they
name, a Jira issue's links to its pages), adds log lines matching the error when a logs
source is on, and stops at the character budget (about four characters a token). Every
read goes through the run's governed connectors (policy, masking, audit); a read that fails
is noted and the rest goes on: a missing source never stops the run, and never widens it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from codefactory.context.errors import ContextError
from codefactory.context.port import Connector, ContextItem
from codefactory.context.refs import Ref, parse_citation, trigger_refs, unique
from codefactory.domain import TriggerEvent

CHARS_PER_TOKEN = 4
LOG_LINES = 5
FOLLOWED_PER_ITEM = 5
MAX_DIRECT_REFS = 20
"""The most refs read from a ticket itself: a ticket naming thousands of issues is read
for its first 20, not one request each."""


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
    mask: Callable[[str], str] = str,
) -> Gathered:
    """The context of `trigger` from the run's governed `connectors` (name → connector),
    within `token_budget` tokens: at most `MAX_DIRECT_REFS` of what the ticket names, and no
    read once the budget is spent. `mask` masks the ticket's own text where it becomes a
    query (the run's masker), so no unmasked value reaches a source or the audit log."""
    budget = _Budget(chars=token_budget * CHARS_PER_TOKEN)
    failures: list[str] = []
    seen: set[Ref] = set()

    def fetch(ref: Ref) -> ContextItem | None:
        connector = connectors.get(ref[0])
        if connector is None or ref in seen or budget.chars <= 0:
            return None
        seen.add(ref)
        try:
            return connector.fetch(ref[1])
        except ContextError as err:
            failures.append(f"{ref[0]}:{ref[1]}: {err.kind}: {err}")
            return None

    direct: list[ContextItem] = []
    for ref in trigger_refs(trigger)[:MAX_DIRECT_REFS]:
        item = fetch(ref)
        if item is not None:
            direct.append(item)
            budget.take(item)
    followed: list[ContextItem] = []
    for item in direct:
        pointers = [p for c in item.related if (p := parse_citation(c)) is not None]
        for pointer in unique(pointers)[:FOLLOWED_PER_ITEM]:
            found = fetch(pointer)
            if found is not None:
                followed.append(found)
    for item in followed:
        budget.take(item)
    if budget.chars > 0:
        for item in _log_lines(mask(trigger.title), direct, connectors, failures):
            budget.take(item)
    return Gathered(
        items=tuple(budget.items), left_out=tuple(budget.left_out), failures=tuple(failures)
    )


def _log_lines(
    title: str,
    direct: list[ContextItem],
    connectors: Mapping[str, Connector],
    failures: list[str],
) -> list[ContextItem]:
    """Log lines matching the error (the first Sentry item's title, else the ticket's
    masked `title`)."""
    logs = connectors.get("datadog")
    if logs is None:
        return []
    errors = [item.title for item in direct if item.source == "sentry" and item.title]
    query = (errors[0] if errors else title).strip()
    if not query:
        return []
    try:
        return logs.search(query, limit=LOG_LINES)
    except ContextError as err:
        failures.append(f"datadog:search: {err.kind}: {err}")
        return []
