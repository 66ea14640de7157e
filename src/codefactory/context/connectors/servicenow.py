"""ServiceNow incidents, problems, changes and knowledge articles through the Table API
(`GET /api/now/table/{table}`, answer `{"result": [record, ...]}`).

A record is named by its number (`INC0010001`, `KB0000012`); the number's prefix decides
the table, and a table outside the connector's `servicenow-table` scope is refused before
any request. Values are asked as display values (`sysparm_display_value=true`) without
reference links, so a reference reads as its name and a journal field (`work_notes`,
`comments`) as its rendered text. The caller is never asked for: personal data the engine
does not need.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from codefactory.context.credentials import source_parts
from codefactory.context.errors import MalformedResponse, NotFound, OutOfScope
from codefactory.context.http import VendorClient, path_segment
from codefactory.context.port import ContextItem, Scope
from codefactory.context.text import clip

if TYPE_CHECKING:
    from codefactory.config import Settings

NAME = "servicenow"
SCOPE_KIND = "servicenow-table"


@dataclass(frozen=True)
class TableShape:
    """What the connector reads of one table: its number prefix, the fields asked for
    (in the order they are rendered), and the fields `search` matches with `LIKE`."""

    prefix: str
    fields: tuple[str, ...]
    searched: tuple[str, ...]
    html_field: str = ""
    """A field holding HTML (a knowledge article's `text`), rendered to plain text."""


_TICKET_FIELDS = ("state", "priority", "category", "cmdb_ci", "assignment_group", "opened_at")
TABLES: dict[str, TableShape] = {
    "incident": TableShape(
        "INC",
        ("description", *_TICKET_FIELDS, "close_notes", "work_notes", "comments"),
        ("short_description", "description"),
    ),
    "problem": TableShape(
        "PRB",
        ("description", *_TICKET_FIELDS, "cause_notes", "fix_notes", "work_notes"),
        ("short_description", "description"),
    ),
    "change_request": TableShape(
        "CHG",
        (
            "description",
            *_TICKET_FIELDS,
            "risk",
            "start_date",
            "end_date",
            "implementation_plan",
            "backout_plan",
            "work_notes",
        ),
        ("short_description", "description"),
    ),
    "kb_knowledge": TableShape(
        "KB",
        ("kb_knowledge_base", "workflow_state", "text"),
        ("short_description", "text"),
        html_field="text",
    ),
}
"""The tables this connector reads; a scope naming another table is a configuration error."""

_NUMBER = re.compile(r"(?P<prefix>[A-Z]{2,6})(?P<digits>[0-9]{4,12})")
_QUERY_UNSAFE = re.compile(r"[\^\x00-\x1f\x7f]")
_BLOCK_TAGS = frozenset(
    {"p", "div", "br", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "pre", "ul", "ol", "table"}
)


def inert_query_text(query: str) -> str:
    """`query` made safe as the value of a `LIKE` condition in a ServiceNow encoded query:
    `^` (the condition separator, as in `^OR`, `^NQ`) and control characters are removed,
    so the text can only ever be matched, never add a condition."""
    return _QUERY_UNSAFE.sub("", query).strip()


class ServiceNowConnector:
    """Incidents, problems, changes and knowledge articles of the scoped tables."""

    name = NAME

    def __init__(
        self, client: VendorClient, scope: Scope, data_class: str, max_item_chars: int
    ) -> None:
        unknown = [table for table in scope.values if table not in TABLES]
        if scope.kind != SCOPE_KIND or unknown:
            raise ValueError(
                f"servicenow: scope must be {SCOPE_KIND} over {', '.join(TABLES)}; "
                f"got {scope.kind} {', '.join(unknown)}".rstrip()
            )
        self.client = client
        self.scope = scope
        self.data_class = data_class
        self.max_item_chars = max_item_chars

    def search(self, query: str, *, limit: int = 10) -> list[ContextItem]:
        """Records of each scoped table whose short description or body contains `query`
        (plain text; `^` and control characters are removed, see `inert_query_text`), up
        to `limit` in all. Raises `ValueError` for a query left empty, or a `ContextError`."""
        text = inert_query_text(query)
        if not text:
            raise ValueError("servicenow: the search text is empty")
        items: list[ContextItem] = []
        for table in self.scope.values:
            if len(items) >= limit:
                break
            condition = "^OR".join(f"{field}LIKE{text}" for field in TABLES[table].searched)
            records = self._records(table, condition, limit - len(items))
            items.extend(self._item(table, record) for record in records)
        return items

    def fetch(self, ref: str) -> ContextItem:
        """The record numbered `ref` (`INC0010001`, `KB0000012`, `PRB…`, `CHG…`).

        Raises `OutOfScope` (no request made) when its table is not in scope or not one this
        connector reads, `NotFound` when `ref` is not a record number or no record has it."""
        table = self._table_of(ref)
        records = self._records(table, f"number={ref}", 1)
        if not records:
            raise NotFound(NAME, f"no {table} record numbered {ref}")
        return self._item(table, records[0])

    def _table_of(self, ref: str) -> str:
        match = _NUMBER.fullmatch(ref)
        if match is None:
            raise NotFound(NAME, f"{ref!r} is not a ServiceNow record number (like INC0010001)")
        prefix = match["prefix"]
        table = next((name for name, shape in TABLES.items() if shape.prefix == prefix), None)
        if table is None or not self.scope.allows(table):
            where = table or f"the table of {prefix} numbers"
            raise OutOfScope(NAME, f"{ref}: {where} is outside the scope {self.scope}")
        return table

    def _records(self, table: str, condition: str, limit: int) -> list[dict[str, Any]]:
        shape = TABLES[table]
        params = {
            "sysparm_query": condition,
            "sysparm_limit": str(limit),
            "sysparm_display_value": "true",
            "sysparm_exclude_reference_link": "true",
            "sysparm_fields": ",".join(("sys_id", "number", "short_description", *shape.fields)),
        }
        answer = self.client.get_json(f"/api/now/table/{path_segment(table)}", params)
        records = answer.get("result") if isinstance(answer, dict) else None
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise MalformedResponse(NAME, f"the {table} answer has no 'result' list of records")
        return records

    def _item(self, table: str, record: dict[str, Any]) -> ContextItem:
        shape = TABLES[table]
        number = _display(record.get("number"))
        if not number:
            raise MalformedResponse(NAME, f"a {table} record has no number")
        title = f"{number}: {_display(record.get('short_description'))}"
        lines = [title, ""]
        for field in shape.fields:
            value = _display(record.get(field))
            if field == shape.html_field:
                value = html_to_text(value)
            if value:
                lines.append(f"{field}:\n{value}" if "\n" in value else f"{field}: {value}")
        text, truncated = clip("\n".join(lines).strip(), self.max_item_chars)
        sys_id = _display(record.get("sys_id"))
        uri = f"{self.client.base_url}/{table}.do?sys_id={quote(sys_id)}" if sys_id else ""
        return ContextItem(
            source=NAME,
            id=number,
            title=title,
            text=text,
            data_class=self.data_class,
            uri=uri,
            truncated=truncated,
        )


def _display(value: Any) -> str:
    """A field's display value: the string itself, or a reference's `display_value` when
    the instance sent the `{"display_value", "link"}` object."""
    if isinstance(value, dict):
        value = value.get("display_value", "")
    return "" if value is None else str(value).strip()


class _HtmlText(HTMLParser):
    """HTML to plain text: block elements become line breaks, list items `- `, scripts and
    styles are dropped, entities decoded."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skipping += 1
        elif tag == "li":
            self.parts.append("\n- ")
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skipping = max(0, self._skipping - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """The text of an HTML fragment (a knowledge article body), blank lines collapsed."""
    parser = _HtmlText()
    parser.feed(html)
    parser.close()
    lines = [" ".join(line.split()) for line in "".join(parser.parts).splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def servicenow_connector(settings: Settings) -> ServiceNowConnector | None:
    """The connector `settings` configure (`servicenow.*`, `context.servicenow.*`), or None
    when the instance or the scope is not set. Raises `SourceUnauthorized` when the
    credential file cannot be read, `ValueError` for a scope naming an unknown table."""
    context = settings.context
    parts = source_parts(NAME, SCOPE_KIND, settings.servicenow, context.servicenow, context)
    if parts is None:
        return None
    return ServiceNowConnector(parts.client, parts.scope, parts.data_class, parts.max_item_chars)
