"""The context of each live run: its governed connectors and its masker.

A run's pseudonym table (the same address is `<EMAIL_ADDRESS_1>` in the task, in every MCP
answer and in every tool output) lives here, in memory on the host, from the moment the loop
gathers the task until the run ends; it is never written anywhere an engine can read.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from codefactory.context.port import Connector
from codefactory.context.wrappers import (
    AuditedConnector,
    AuditRecorder,
    MaskingConnector,
    ReadDecider,
    ScopedConnector,
    TextMasker,
)

DeciderFor = Callable[[str], ReadDecider]
"""The run's read policy for a reader (`loop`, `mcp`)."""


def governed(
    connector: Connector,
    *,
    masker: TextMasker,
    decide: ReadDecider,
    record: AuditRecorder,
    actor: str,
    run_id: str,
    reader: str,
) -> AuditedConnector:
    """`connector` as a run reads it: audited, then decided by policy, then masked."""
    return AuditedConnector(
        inner=ScopedConnector(
            inner=MaskingConnector(inner=connector, masker=masker), decide=decide
        ),
        record=record,
        actor=actor,
        run_id=run_id,
        reader=reader,
        mask=lambda text: str(masker.mask(text).text),
    )


@dataclass(kw_only=True)
class RunContext:
    """One run's sources (raw, by name), masker and read policy; `for_reader` gives the
    governed connectors a reader uses."""

    run_id: str
    actor: str
    engine: str
    sources: Mapping[str, Connector]
    masker: TextMasker
    decider_for: DeciderFor
    record: AuditRecorder
    restore: Callable[[str], str] = str
    """Placeholders back to the values they stand for (host only: an in-harness engine's
    tool arguments)."""
    _governed: dict[str, dict[str, AuditedConnector]] = field(default_factory=dict)

    def for_reader(self, reader: str) -> dict[str, AuditedConnector]:
        """Connector name → governed connector, for `reader` (`loop` or `mcp`)."""
        if reader not in self._governed:
            decide = self.decider_for(reader)
            self._governed[reader] = {
                name: governed(
                    source,
                    masker=self.masker,
                    decide=decide,
                    record=self.record,
                    actor=self.actor,
                    run_id=self.run_id,
                    reader=reader,
                )
                for name, source in self.sources.items()
            }
        return self._governed[reader]

    def mask(self, text: str) -> str:
        """`text` masked with the run's pseudonyms (a ticket's title and body, a tool's
        output)."""
        return str(self.masker.mask(text).text)

    def unmask(self, text: str) -> str:
        """`text` with the run's placeholders replaced by their values (`restore`)."""
        return self.restore(text)


class RunContexts:
    """The live runs' contexts, by run id; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[str, RunContext] = {}

    def put(self, context: RunContext) -> None:
        with self._lock:
            self._runs[context.run_id] = context

    def get(self, run_id: str) -> RunContext | None:
        with self._lock:
            return self._runs.get(run_id)

    def drop(self, run_id: str) -> None:
        """Forget the run's context and its pseudonyms (at the run's end)."""
        with self._lock:
            self._runs.pop(run_id, None)
