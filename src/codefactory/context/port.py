"""The context port: a connector declares what it is (name, data class, scope) and answers
`search` and `fetch` with classified items.

Cross-cutting concerns are wrappers around a connector, never flags inside one
(`context.wrappers`): `ScopedConnector` asks policy whether the run may read the source,
`MaskingConnector` masks secrets and personal data, `AuditedConnector` records each read.
A connector reaches only what its `scope` names; a reference outside it is `OutOfScope`
(`context.errors`), never a wider read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from codefactory.domain import Run
    from codefactory.sandbox.port import Workspace


@dataclass(frozen=True, kw_only=True)
class Scope:
    """What a connector may reach: `kind` names the vendor's unit (`jira-project`,
    `confluence-space`, `servicenow-table`, `sentry-project`, `datadog-index`,
    `repository`, `folder`) and `values` the units themselves (`("PAY", "OPS")`)."""

    kind: str
    values: tuple[str, ...] = ()

    def allows(self, value: str) -> bool:
        """Whether `value` (a project key, space, table, ...) is inside the scope; exact,
        case-sensitive match as the vendors compare keys."""
        return value in self.values

    def __str__(self) -> str:
        return f"{self.kind}:{','.join(self.values)}"


@dataclass(frozen=True, kw_only=True)
class ContextItem:
    """One piece of context: where it came from (`source` and `id`, what a citation names),
    its classification, and its text as an engine may see it.

    `masked` counts what `MaskingConnector` replaced, by detector (`{"EMAIL_ADDRESS": 2}`);
    `truncated` says the source had more than the connector returned (the text ends with a
    marked note)."""

    source: str
    """The connector's name (`jira`, `sentry`, `repository`, ...)."""
    id: str
    """The source's own id: an issue key, a path with a line, an event id."""
    title: str
    text: str
    data_class: str
    uri: str = ""
    """Where a human finds the original (an https URL or a repository path); never fetched."""
    truncated: bool = False
    masked: dict[str, int] = field(default_factory=dict)
    related: tuple[str, ...] = ()
    """Citations of what this item points at, for the loop to follow within its budget:
    `repository:app/payments.py` for a stack frame, `confluence:98765` for a linked page,
    `jira:PAY-8` for a linked issue. Pointers only: following one is a read of its own,
    decided and audited like any other."""

    @property
    def citation(self) -> str:
        """`source:id`: how the task and the design rationale name this item."""
        return f"{self.source}:{self.id}"

    def with_text(self, text: str, **changes: object) -> ContextItem:
        """A copy with `text` (and other fields) replaced."""
        return replace(self, text=text, **changes)  # type: ignore[arg-type]


class Connector(Protocol):
    """A source of context (repository, docs, tickets, incidents, errors, logs)."""

    @property
    def name(self) -> str:
        """Unique within a factory; the MCP tool names and the audit events use it."""
        ...

    @property
    def data_class(self) -> str:
        """The most sensitive class the source may hold (`public` < `internal` <
        `confidential` < `restricted`, names from `context.data_classes`)."""
        ...

    @property
    def scope(self) -> Scope:
        """What the connector may reach."""
        ...

    def search(self, query: str, *, limit: int = 10) -> list[ContextItem]:
        """Up to `limit` items matching `query` (plain text: never a query language the
        caller could use to widen the scope). Raises a `ContextError`."""
        ...

    def fetch(self, ref: str) -> ContextItem:
        """The item `ref` names (an id `search` returned, or one a ticket points at).
        Raises `OutOfScope` for a ref outside `scope`, `NotFound`, or another
        `ContextError`."""
        ...


class RunSources(Protocol):
    """One run's view of the context engine (`context.runs.RunContext`)."""

    def for_reader(self, reader: str) -> Mapping[str, Connector]:
        """Source name → the connector `reader` (`loop`, `mcp`) reads through: decided by
        policy, masked and audited."""
        ...

    def mask(self, text: str) -> str:
        """`text` masked with the run's pseudonyms (the ticket's own title and body)."""
        ...


class ContextEngine(Protocol):
    """Opens a run's context when the loop gathers its task; closes it at the run's end."""

    def open(self, run: Run, engine: str, workspace: Workspace, *, actor: str = "") -> RunSources:
        """The run's sources for `engine` (the same while the run lives); reads are
        recorded as `actor`'s (default the run's agent)."""
        ...

    def close(self, run_id: str) -> None:
        """Forget the run's context and its pseudonym table."""
        ...
