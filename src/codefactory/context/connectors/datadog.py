"""Datadog logs and monitors: the logs search API (`POST /api/v2/logs/events/search`) and
the monitor API (`GET /api/v1/monitor/{id}`).

Every log search names the scoped indexes in `filter.indexes` (never Datadog's default
`*`), and the caller's text goes into `filter.query` as one quoted phrase, so it cannot
name another index or add facets. A monitor is in scope only when one of its tags is
`index:<name>` or `codefactory:<name>` for a scoped index. Refs are `log:<id>` and
`monitor:<id>`.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from codefactory.context.credentials import source_parts
from codefactory.context.errors import MalformedResponse, NotFound, OutOfScope
from codefactory.context.http import VendorClient
from codefactory.context.port import ContextItem, Scope
from codefactory.context.text import clip

if TYPE_CHECKING:
    from codefactory.config import Settings

NAME = "datadog"
SCOPE_KIND = "datadog-index"
SEARCH_FROM = "now-24h"
"""How far back `search` looks (Datadog's relative date math)."""
FETCH_FROM = "now-15d"
"""How far back `fetch("log:…")` looks: Datadog's standard retention."""
MAX_LIMIT = 1000
"""The largest `page.limit` the logs search accepts."""
_LOG_ID = re.compile(r"[A-Za-z0-9_-]{1,200}")
_MONITOR_ID = re.compile(r"[0-9]{1,20}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SCOPE_TAGS = ("index", "codefactory")


def phrase(query: str) -> str:
    """`query` as one quoted phrase of the Datadog log query syntax (`"…"`, `\\` and `"`
    escaped, control characters removed): free text that cannot add `index:`, `@facet:`,
    `OR` or other terms."""
    text = _CONTROL.sub(" ", query).strip()
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class DatadogConnector:
    """Log lines of the scoped indexes, and monitors tagged with one of them."""

    name = NAME

    def __init__(
        self, client: VendorClient, scope: Scope, data_class: str, max_item_chars: int
    ) -> None:
        if scope.kind != SCOPE_KIND or not scope.values:
            raise ValueError(f"datadog: needs a {SCOPE_KIND} scope naming at least one index")
        self.client = client
        self.scope = scope
        self.data_class = data_class
        self.max_item_chars = max_item_chars

    def search(self, query: str, *, limit: int = 10) -> list[ContextItem]:
        """The newest log lines of the scoped indexes over the last day containing `query`
        (one phrase, see `phrase`), up to `limit`. Raises `ValueError` for an empty query,
        or a `ContextError`."""
        if not _CONTROL.sub("", query).strip():
            raise ValueError("datadog: the search text is empty")
        logs = self._logs(phrase(query), SEARCH_FROM, min(max(limit, 1), MAX_LIMIT))
        return [self._log_item(log) for log in logs[:limit]]

    def fetch(self, ref: str) -> ContextItem:
        """`log:<id>` (a log line of a scoped index, searched by its id over the retention
        period) or `monitor:<id>`. Raises `NotFound` for another ref or an unknown id,
        `OutOfScope` for a monitor not tagged with a scoped index."""
        kind, _, ident = ref.partition(":")
        if kind == "log" and _LOG_ID.fullmatch(ident):
            # Datadog documents no single-log GET: search the scoped indexes for the id,
            # and keep only a line whose id is exactly it.
            logs = [log for log in self._logs(f"@id:{ident}", FETCH_FROM, 1) if log["id"] == ident]
            if not logs:
                raise NotFound(NAME, f"no log line {ident} in {', '.join(self.scope.values)}")
            return self._log_item(logs[0])
        if kind == "monitor" and _MONITOR_ID.fullmatch(ident):
            return self._monitor_item(self._monitor(ident))
        raise NotFound(NAME, f"{ref!r} is not log:<id> or monitor:<numeric id>")

    def _logs(self, query: str, since: str, limit: int) -> list[dict[str, Any]]:
        body = {
            "filter": {
                "query": query,
                "indexes": list(self.scope.values),
                "from": since,
                "to": "now",
            },
            "sort": "-timestamp",
            "page": {"limit": limit},
        }
        answer = self.client.post_json("/api/v2/logs/events/search", body)
        logs = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(logs, list) or not all(
            isinstance(log, dict)
            and isinstance(log.get("id"), str)
            and isinstance(log.get("attributes"), dict)
            for log in logs
        ):
            raise MalformedResponse(NAME, "the logs search answer has no 'data' list of logs")
        return logs

    def _log_item(self, log: dict[str, Any]) -> ContextItem:
        attrs = log["attributes"]
        message = str(attrs.get("message") or "")
        first_line = message.splitlines()[0][:120] if message else ""
        title = f"{attrs.get('service', '')} {attrs.get('status', '')}: {first_line}".strip()
        lines = [
            f"timestamp: {attrs.get('timestamp', '')}",
            f"status: {attrs.get('status', '')}",
            f"service: {attrs.get('service', '')}",
            f"host: {attrs.get('host', '')}",
            f"message: {message}",
        ]
        if attrs.get("tags"):
            lines.append(f"tags: {', '.join(str(tag) for tag in attrs['tags'])}")
        if attrs.get("attributes"):
            lines.append(f"attributes: {json.dumps(attrs['attributes'], sort_keys=True)}")
        return self._item(f"log:{log['id']}", title, "\n".join(lines))

    def _monitor(self, ident: str) -> dict[str, Any]:
        monitor = self.client.get_json(f"/api/v1/monitor/{ident}")
        if not isinstance(monitor, dict):
            raise MalformedResponse(NAME, f"monitor {ident} did not answer an object")
        tags = monitor.get("tags") or []
        allowed = {f"{tag}:{index}" for index in self.scope.values for tag in _SCOPE_TAGS}
        if not isinstance(tags, list) or not allowed.intersection(map(str, tags)):
            raise OutOfScope(
                NAME,
                f"monitor {ident} is not tagged index:<name> or codefactory:<name> for an "
                f"index in the scope {self.scope}",
            )
        return monitor

    def _monitor_item(self, monitor: dict[str, Any]) -> ContextItem:
        title = f"monitor {monitor.get('id', '')}: {monitor.get('name', '')}"
        lines = [
            title,
            f"type: {monitor.get('type', '')}",
            f"state: {monitor.get('overall_state', '')}",
            f"query: {monitor.get('query', '')}",
            f"tags: {', '.join(str(tag) for tag in monitor.get('tags') or [])}",
            f"message:\n{monitor.get('message', '')}",
        ]
        return self._item(f"monitor:{monitor.get('id', '')}", title, "\n".join(lines))

    def _item(self, ident: str, title: str, text: str) -> ContextItem:
        clipped, truncated = clip(text, self.max_item_chars)
        return ContextItem(
            source=NAME,
            id=ident,
            title=title,
            text=clipped,
            data_class=self.data_class,
            truncated=truncated,
        )


def datadog_connector(settings: Settings) -> DatadogConnector | None:
    """The connector `settings` configure (`datadog.*`, `context.datadog.*`), or None when
    the site or the scope is not set. Raises `SourceUnauthorized` when a key file cannot be
    read."""
    context = settings.context
    parts = source_parts(NAME, SCOPE_KIND, settings.datadog, context.datadog, context)
    if parts is None:
        return None
    return DatadogConnector(parts.client, parts.scope, parts.data_class, parts.max_item_chars)
