"""The cross-cutting concerns of context reads, as wrappers around any `Connector`.

A run's connector is `AuditedConnector(ScopedConnector(MaskingConnector(inner)))`
(`context.assembly.governed`): policy decides first, the text is masked before anything
leaves the wrapper stack, and the audit log records every read, refused and failed ones
included, with what was masked (counts by detector, never the values).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from codefactory.audit.events import ReadBy
from codefactory.context.errors import ContextError, ReadRefused
from codefactory.context.port import Connector, ContextItem, Scope
from codefactory.domain import AuditEvent

QUERY_AUDIT_CHARS = 500


class AuditRecorder(Protocol):
    """Appends one audit event (`RunRepository.append`, or a transaction's `append`)."""

    def __call__(self, event: AuditEvent, /) -> object: ...


class TextMasker(Protocol):
    """What `MaskingConnector` needs of a masker (`context.masking.Masker`)."""

    def mask(self, text: str) -> Any:
        """An object with `text: str` and `counts: dict[str, int]` (detector → replaced)."""
        ...


@dataclass(frozen=True, kw_only=True)
class ReadRequest:
    """The facts policy decides a read on."""

    connector: str
    data_class: str
    scope: Scope
    operation: str
    """`search` or `fetch`."""


ReadDecider = Callable[[ReadRequest], str | None]
"""Why a read may not happen (a sentence for the engine and the audit log), or None."""


class _Delegating:
    """Declares what the wrapped connector declares."""

    inner: Connector

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def data_class(self) -> str:
        return self.inner.data_class

    @property
    def scope(self) -> Scope:
        return self.inner.scope


@dataclass
class MaskingConnector(_Delegating):
    """Masks each item's title and text with the run's masker (one pseudonym table per run,
    so the same address is the same placeholder in every item); `item.masked` counts what
    was replaced, by detector."""

    inner: Connector
    masker: TextMasker

    def search(self, query: str, *, limit: int = 10) -> list[ContextItem]:
        return [self._masked(item) for item in self.inner.search(query, limit=limit)]

    def fetch(self, ref: str) -> ContextItem:
        return self._masked(self.inner.fetch(ref))

    def _masked(self, item: ContextItem) -> ContextItem:
        title = self.masker.mask(item.title)
        text = self.masker.mask(item.text)
        counts = dict(item.masked)
        for result in (title, text):
            for detector, count in result.counts.items():
                counts[detector] = counts.get(detector, 0) + count
        return item.with_text(text.text, title=title.text, masked=counts)


@dataclass
class ScopedConnector(_Delegating):
    """Asks `decide` (Cedar and the engine registry's clearance, `context.policy`) before
    every read; a refusal is `ReadRefused` and the inner connector is never called."""

    inner: Connector
    decide: ReadDecider

    def search(self, query: str, *, limit: int = 10) -> list[ContextItem]:
        self._check("search")
        return self.inner.search(query, limit=limit)

    def fetch(self, ref: str) -> ContextItem:
        self._check("fetch")
        return self.inner.fetch(ref)

    def _check(self, operation: str) -> None:
        refusal = self.decide(
            ReadRequest(
                connector=self.inner.name,
                data_class=self.inner.data_class,
                scope=self.inner.scope,
                operation=operation,
            )
        )
        if refusal:
            raise ReadRefused(self.inner.name, refusal)


def items_digest(items: Sequence[ContextItem]) -> str:
    """SHA-256 over what the reader received: each item's citation, title and text, as
    canonical JSON (sorted keys, no spaces), in order."""
    document = [{"id": i.citation, "title": i.title, "text": i.text} for i in items]
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class AuditedConnector(_Delegating):
    """Records every read as one audit event through `record`:
    `context-read` with the connector, operation, query or ref, the items' citations, the
    digest of what was returned, its class, what was masked (detector → count) and what was
    cut; `context-read-failed` with the error's kind and message when the read did not
    happen (refused, out of scope, the source failing)."""

    inner: Connector
    record: AuditRecorder
    actor: str
    run_id: str
    reader: str = ""
    """Who asked: `loop` (gathering for the task) or `mcp`."""
    mask: Callable[[str], str] = str
    """Masks the query or ref before it is recorded (the run's masker): a search for an
    address must not write the address into the log, which can never forget it."""
    reads: list[ContextItem] = field(default_factory=list)
    """Every item this wrapper returned, in order (the run's citations)."""

    def search(self, query: str, *, limit: int = 10) -> list[ContextItem]:
        return self._audited("search", query, lambda: self.inner.search(query, limit=limit))

    def fetch(self, ref: str) -> ContextItem:
        return self._audited("fetch", ref, lambda: [self.inner.fetch(ref)])[0]

    def _audited(
        self, operation: str, argument: str, read: Callable[[], list[ContextItem]]
    ) -> list[ContextItem]:
        read_by = ReadBy(
            actor=self.actor,
            run_id=self.run_id,
            connector=self.inner.name,
            operation=operation,
            argument=self.mask(argument[:QUERY_AUDIT_CHARS]),
            data_class=self.inner.data_class,
            scope=str(self.inner.scope),
            reader=self.reader,
        )
        try:
            items = read()
        except ContextError as err:
            self.record(read_by.failed(error=err.kind, message=str(err)))
            raise
        masked: dict[str, int] = {}
        for item in items:
            for detector, count in item.masked.items():
                masked[detector] = masked.get(detector, 0) + count
        self.record(
            read_by.read(
                items=[item.citation for item in items],
                digest=items_digest(items),
                masked=masked,
                truncated=[item.citation for item in items if item.truncated],
            )
        )
        self.reads.extend(items)
        return items
