"""The context engine of a factory: which sources exist (from settings), and each run's
context (`RunContext`) from the moment the loop gathers its task until the run ends.

Vendor connectors are built per run, when their service has a base URL and their source a
scope; a source whose credential cannot be read is left out of the run with a
`context-source-unavailable` audit event (the run goes on without it; nothing else widens).
The repository is always a source, read inside the run's sandbox.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from codefactory.audit.events import ContextSourceUnavailable
from codefactory.context.errors import ContextError
from codefactory.context.lazy_index import LazyIndex
from codefactory.context.policy import RunReadPolicy
from codefactory.context.port import Connector
from codefactory.context.runs import RunContext, RunContexts
from codefactory.context.wrappers import AuditRecorder, ReadDecider
from codefactory.domain import Run
from codefactory.policy.port import PolicyEngine
from codefactory.sandbox.port import Workspace

if TYPE_CHECKING:
    from codefactory.config import Settings
    from codefactory.sandbox.mirror import Mirrors

SourceFactory = Callable[["Settings"], Connector | None]
EngineClasses = Callable[[str], Sequence[str]]
"""The data classes the engine registry cleared an engine for."""


def vendor_sources() -> list[tuple[str, SourceFactory]]:
    """The vendor connectors' factories, by source name (imported when a run opens)."""
    from codefactory.context.connectors.confluence import confluence_connector
    from codefactory.context.connectors.datadog import datadog_connector
    from codefactory.context.connectors.docs import docs_connector
    from codefactory.context.connectors.jira import jira_connector
    from codefactory.context.connectors.sentry import sentry_connector
    from codefactory.context.connectors.servicenow import servicenow_connector

    return [
        ("docs", docs_connector),
        ("jira", jira_connector),
        ("confluence", confluence_connector),
        ("servicenow", servicenow_connector),
        ("sentry", sentry_connector),
        ("datadog", datadog_connector),
    ]


class ContextService:
    """Opens and closes runs' contexts; `runs` is what the MCP endpoint serves."""

    def __init__(
        self,
        settings: Settings,
        *,
        policy: PolicyEngine,
        engine_classes: EngineClasses,
        record: AuditRecorder,
        runs: RunContexts | None = None,
        mirrors: Mirrors | None = None,
    ) -> None:
        self.settings = settings
        self.mirrors = mirrors
        self.policy = policy
        self.engine_classes = engine_classes
        self.record = record
        self.runs = runs or RunContexts()

    def open(self, run: Run, engine: str, workspace: Workspace, *, actor: str = "") -> RunContext:
        """The run's context (the same one on every call while the run lives): its sources,
        a fresh pseudonym table, and its read policy for `engine`. Reads are recorded as
        `actor`'s (default the run's agent; a person serving the context with `mcp serve`)."""
        existing = self.runs.get(run.id)
        if existing is not None and existing.engine == engine and not actor:
            return existing
        from codefactory.context.masking.masker import Masker
        from codefactory.context.masking.pseudonyms import PLACEHOLDER, Pseudonyms

        pseudonyms = Pseudonyms()

        def restore(text: str) -> str:
            return PLACEHOLDER.sub(lambda m: pseudonyms.original(m.group(0)) or m.group(0), text)

        context = RunContext(
            run_id=run.id,
            actor=actor or run.agent_id,
            engine=engine,
            sources=self._sources(run, workspace),
            masker=Masker(self.settings.context.masking, pseudonyms),
            restore=restore,
            decider_for=lambda reader: self._decider(run, engine, reader),
            record=self.record,
        )
        self.runs.put(context)
        return context

    def close(self, run_id: str) -> None:
        """Forget the run's context and its pseudonyms; close its sources' connections."""
        context = self.runs.get(run_id)
        self.runs.drop(run_id)
        if context is None:
            return
        for source in context.sources.values():
            index = getattr(source, "index", None)
            if index is not None and callable(getattr(index, "close", None)):
                index.close()
            client = getattr(source, "client", None)
            close = getattr(client, "close", None)
            if callable(close):
                close()

    def _decider(self, run: Run, engine: str, reader: str) -> ReadDecider:
        return RunReadPolicy(
            policy=self.policy,
            run=run,
            engine=engine,
            engine_classes=tuple(self.engine_classes(engine)),
            reader=reader,
        )

    def _index(self, run: Run, workspace: Workspace) -> LazyIndex | None:
        """The repository's full-text index, brought to the run's base commit (from the
        factory's mirror, never the checkout's `.git`) at its first search; None without a
        mirror or a checkout."""
        if self.mirrors is None or not run.repository_path:
            return None
        mirrors, checkout = self.mirrors, Path(run.repository_path)

        def unavailable(err: Exception) -> None:
            self.record(
                ContextSourceUnavailable(
                    actor=run.agent_id,
                    run_id=run.id,
                    connector="repository-index",
                    error=type(err).__name__,
                    message=str(err),
                )
            )

        return LazyIndex(
            path_of=lambda: mirrors.sync(checkout).path,
            data_dir=self.settings.data_dir,
            repository=run.repository,
            commit=workspace.base_commit,
            on_error=unavailable,
        )

    def _sources(self, run: Run, workspace: Workspace) -> dict[str, Connector]:
        from codefactory.context.connectors.repository import RepositoryConnector

        settings = self.settings
        sources: dict[str, Connector] = {
            "repository": RepositoryConnector(
                workspace,
                repository=run.repository,
                data_class=settings.context.repository_data_class,
                index=self._index(run, workspace) if settings.context.repository_index else None,
                max_item_chars=settings.context.max_item_chars,
            )
        }
        for name, factory in vendor_sources():
            try:
                connector = factory(settings)
            except (ContextError, ValueError) as err:  # a credential, a scope it refuses
                self.record(
                    ContextSourceUnavailable(
                        actor=run.agent_id,
                        run_id=run.id,
                        connector=name,
                        error=getattr(err, "kind", "invalid-settings"),
                        message=str(err),
                    )
                )
                continue
            if connector is not None:
                sources[name] = connector
        return sources
