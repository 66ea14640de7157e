"""Confluence Cloud pages: `GET /wiki/api/v2/pages/{id}?body-format=storage` for one page,
`GET /wiki/rest/api/search?cql=...` (REST v1, where CQL search lives) to find pages.

A page id does not say its space, so the page is read and its `spaceId` compared with the
ids of the configured space keys (resolved once through `GET /wiki/api/v2/spaces?keys=`);
a page of another space is refused with `OutOfScope` and none of its text is kept. The CQL
is written here, never by the caller (the words are one quoted string, see
`atlassian_string`), and a search result outside the scope is dropped even if Confluence
returned it. Page bodies are storage format (XHTML with `ac:` macros), rendered to text by
`storage_to_text`. The connector's base URL is the site (`https://bank.atlassian.net`).
Shapes: https://developer.atlassian.com/cloud/confluence/rest/v2/ and
https://developer.atlassian.com/cloud/confluence/rest/v1/api-group-search/
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any

from codefactory.context.connectors.jira import MAX_RESULTS, atlassian_string, search_words
from codefactory.context.credentials import source_parts
from codefactory.context.errors import MalformedResponse, OutOfScope
from codefactory.context.http import VendorClient, path_segment
from codefactory.context.port import ContextItem, Scope
from codefactory.context.text import clip

if TYPE_CHECKING:
    from codefactory.config import Settings

NAME = "confluence"
SCOPE_KIND = "confluence-space"
PAGE_ID = re.compile(r"^\d{1,20}$")
SPACE_KEY = re.compile(r"^~?[A-Za-z0-9_:-]+$")
"""A space key (`ENG`), or a personal space's (`~5b10ac8d82e05b22cc7d4ef5`)."""
_HIGHLIGHT = re.compile(r"@@@(?:end)?hl@@@")
_BLOCK_TAGS = frozenset({"p", "div", "blockquote", "section", "article", "table", "hr"})
_SKIPPED = frozenset({"script", "style", "ac:parameter"})


class ConfluenceConnector:
    """Confluence pages of the spaces in `scope`
    (`Scope(kind="confluence-space", values=("ENG", "OPS"))`).

    `fetch("98765")` answers the page's title and body as text; `search` answers pages whose
    text matches, each with Confluence's excerpt (fetch one for its full text). Texts longer
    than `max_item_chars` are clipped."""

    name = NAME

    def __init__(
        self, client: VendorClient, scope: Scope, data_class: str, max_item_chars: int
    ) -> None:
        if scope.kind != SCOPE_KIND or not scope.values:
            raise ValueError(f"confluence: the scope must be a non-empty {SCOPE_KIND}")
        for key in scope.values:
            if not SPACE_KEY.match(key):
                raise ValueError(f"confluence: {key!r} is not a Confluence space key")
        self.client = client
        self.scope = scope
        self.data_class = data_class
        self.max_item_chars = max_item_chars
        self._space_keys: dict[str, str] | None = None

    def fetch(self, ref: str) -> ContextItem:
        """The page `ref` (a numeric page id). Raises `OutOfScope` (not a page id: no
        request made; a page of another space: refused after reading its space), `NotFound`,
        or another `ContextError`."""
        page_id = ref.strip()
        if not PAGE_ID.match(page_id):
            raise OutOfScope(self.name, f"{ref[:80]!r} is not a Confluence page id")
        spaces = self.space_keys()
        page = self.client.get_json(
            f"/wiki/api/v2/pages/{path_segment(page_id)}", {"body-format": "storage"}
        )
        if not isinstance(page, dict) or str(page.get("id")) != page_id:
            raise MalformedResponse(self.name, f"the page {page_id} was answered without its id")
        space_id = str(page.get("spaceId"))
        if space_id not in spaces:
            raise OutOfScope(
                self.name, f"page {page_id} is in space id {space_id[:40]}, outside {self.scope}"
            )
        body = _at(page, "body", "storage", "value")
        if not isinstance(body, str):
            raise MalformedResponse(self.name, f"the page {page_id} has no storage body")
        title = _text(page.get("title"))
        text = f"{title}\n\n{storage_to_text(body)}".strip()
        return self._item(page_id, title, text, _at(page, "_links", "webui"))

    def search(self, query: str, *, limit: int = 10) -> list[ContextItem]:
        """Up to `limit` (1–100) pages of the scope whose text matches `query` (plain
        words), each with Confluence's excerpt as its text."""
        spaces = ",".join(atlassian_string(key) for key in self.scope.values)
        cql = f"space in ({spaces}) AND type = page AND text ~ {search_words(self.name, query)}"
        answer = self.client.get_json(
            "/wiki/rest/api/search",
            {"cql": cql, "limit": max(1, min(limit, MAX_RESULTS)), "expand": "content.space"},
        )
        if not isinstance(answer, dict) or not isinstance(answer.get("results"), list):
            raise MalformedResponse(self.name, "search answered without a `results` list")
        items = []
        for result in answer["results"]:
            if not isinstance(result, dict) or not isinstance(result.get("content"), dict):
                continue
            content = result["content"]
            page_id = str(content.get("id", ""))
            if not PAGE_ID.match(page_id) or not self.scope.allows(_space_key(result)):
                continue  # defence in depth: Confluence answered outside the CQL's spaces
            title = _text(content.get("title")) or _text(result.get("title"))
            excerpt = storage_to_text(_HIGHLIGHT.sub("", _text(result.get("excerpt"))))
            webui = _at(content, "_links", "webui") or result.get("url")
            items.append(self._item(page_id, title, f"{title}\n\n{excerpt}".strip(), webui))
        return items[:limit]

    def space_keys(self) -> dict[str, str]:
        """The scope's spaces as Confluence knows them, id → key (`{"1001": "ENG"}`), asked
        once per connector; a configured key Confluence does not know is left out."""
        if self._space_keys is None:
            answer = self.client.get_json(
                "/wiki/api/v2/spaces", {"keys": ",".join(self.scope.values), "limit": 250}
            )
            results = answer.get("results") if isinstance(answer, dict) else None
            if not isinstance(results, list):
                raise MalformedResponse(self.name, "spaces answered without a `results` list")
            self._space_keys = {
                str(space["id"]): space["key"]
                for space in results
                if isinstance(space, dict)
                and space.get("id") is not None
                and isinstance(space.get("key"), str)
                and self.scope.allows(space["key"])
            }
        return self._space_keys

    def _item(self, page_id: str, title: str, text: str, webui: object) -> ContextItem:
        clipped, truncated = clip(text, self.max_item_chars)
        site = self.client.base_url.rstrip("/")
        uri = f"{site}/wiki{webui}" if isinstance(webui, str) and webui.startswith("/") else ""
        return ContextItem(
            source=self.name,
            id=page_id,
            title=title,
            text=clipped,
            data_class=self.data_class,
            uri=uri,
            truncated=truncated,
        )


def confluence_connector(settings: Settings) -> ConfluenceConnector | None:
    """The connector `settings` configure (`confluence.base_url` (the site; a trailing
    `/wiki` is dropped), `.user`, `.token_file`, `context.confluence.scope` and
    `.data_class`, `context.max_item_chars` and `.max_response_bytes`); None when the base
    URL or the scope is empty. Reads the token file now (`SourceUnauthorized`)."""
    service = settings.confluence
    site = service.model_copy(update={"base_url": service.base_url.removesuffix("/wiki")})
    context = settings.context
    parts = source_parts(NAME, SCOPE_KIND, site, context.confluence, context)
    if parts is None:
        return None
    return ConfluenceConnector(parts.client, parts.scope, parts.data_class, parts.max_item_chars)


def _at(value: object, *keys: str) -> Any:
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _space_key(result: dict[str, Any]) -> str:
    """The result's space key: `content.space.key` (asked with `expand=content.space`), else
    the container's `/spaces/<KEY>` display URL."""
    key = _at(result, "content", "space", "key")
    if isinstance(key, str):
        return key
    shown = _at(result, "resultGlobalContainer", "displayUrl")
    match = re.match(r"^/spaces/([^/?#]+)", shown) if isinstance(shown, str) else None
    return match.group(1) if match else ""


def storage_to_text(storage: str) -> str:
    """Plain text of Confluence storage format: headings as `#` lines, paragraphs apart,
    list items as `- ` / `1. ` lines, table rows as cells joined by ` | `, a code macro
    fenced with its language, other macros through their body; scripts, styles and macro
    parameters dropped."""
    parser = _StorageText()
    parser.feed(storage)
    parser.close()
    return parser.text()


class _StorageText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skipping = 0
        self.lists: list[list[int]] = []
        """Open lists: `[number, items]`, number 0 for a bullet list, else the next item's
        number; items 1 once the list has one."""
        self.cells: list[bool] = []
        """Open table rows: whether the row has had a cell yet."""
        self.macros: list[dict[str, str]] = []
        self.preformatted = 0
        self.link_start: list[tuple[int, str]] = []
        self.fresh_item = False
        """A list item's bullet is the last thing written."""

    def text(self) -> str:
        lines = [line.rstrip() for line in "".join(self.out).split("\n")]
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()

    def _break(self, blank: bool = True) -> None:
        """End a block: a space inside a table cell, a continuation line inside a list item
        (nothing right after its bullet), else a line or a blank line."""
        if self.cells:
            if self.out and not self.out[-1].endswith((" ", "\n")):
                self.out.append(" ")
        elif self.lists:
            if not self.fresh_item:
                self._trim()
                self.out.append("\n" + "  " * len(self.lists))
        else:
            self.out.append("\n\n" if blank else "\n")

    def _trim(self) -> None:
        """Drop the whitespace the output ends with (a pending break)."""
        while self.out and not self.out[-1].strip(" \n"):
            self.out.pop()
        if self.out:
            self.out[-1] = self.out[-1].rstrip(" \n")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "ac:parameter" and self.macros and found.get("ac:name") == "language":
            self.macros[-1]["capture"] = "language"
        elif tag in _SKIPPED or self.skipping:
            self.skipping += tag in _SKIPPED
        elif tag == "ac:structured-macro":
            self.macros.append({"name": found.get("ac:name") or "", "language": "", "body": ""})
        elif tag == "ac:plain-text-body" and self.macros:
            self.macros[-1]["capture"] = "body"
        elif tag in ("ul", "ol", "li", "tr", "td", "th", "pre"):
            self._start_structure(tag)
        else:
            self._start_inline(tag, found)

    def _start_structure(self, tag: str) -> None:
        if tag in ("ul", "ol"):
            self.lists.append([1 if tag == "ol" else 0, 0])
        elif tag == "li":
            self._item()
        elif tag == "tr":
            self.out.append("\n")
            self.cells.append(False)
        elif tag in ("td", "th") and self.cells:
            if self.cells[-1]:
                if self.out:
                    self.out[-1] = self.out[-1].rstrip(" ")
                self.out.append(" | ")
            self.cells[-1] = True
        elif tag == "pre":
            self._break()
            self.out.append("```\n")
            self.preformatted += 1

    def _start_inline(self, tag: str, found: dict[str, str | None]) -> None:
        if tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
            self._break()
            self.out.append("#" * int(tag[1]) + " ")
        elif tag == "br":
            self.out.append(" " if self.cells else "\n")
        elif tag == "ac:image":
            self.out.append("[image]")
        elif tag == "ac:link":
            self.link_start.append((len(self.out), ""))
        elif tag == "ri:page" and self.link_start:
            self.link_start[-1] = (self.link_start[-1][0], found.get("ri:content-title") or "")
        elif tag == "a":
            self.link_start.append((len(self.out), found.get("href") or ""))
        elif tag in _BLOCK_TAGS:
            self._break()

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def _item(self) -> None:
        depth = max(len(self.lists) - 1, 0)
        current = self.lists[-1] if self.lists else [0, 0]
        bullet = f"{current[0]}. " if current[0] else "- "
        if current[0]:
            current[0] += 1
        if len(self.lists) > 1 or current[1]:
            self._trim()  # a later item, or a nested list: no blank line inside the list
        current[1] = 1
        self.out.append("\n" + "  " * depth + bullet)
        self.fresh_item = True

    def handle_endtag(self, tag: str) -> None:
        if self.skipping:
            self.skipping -= tag in _SKIPPED
            return
        if tag == "ac:parameter" and self.macros:
            self.macros[-1].pop("capture", None)
        elif tag == "ac:plain-text-body" and self.macros:
            self.macros[-1].pop("capture", None)
        elif tag == "ac:structured-macro" and self.macros:
            self._close_macro(self.macros.pop())
        elif tag in ("ul", "ol") and self.lists:
            self.lists.pop()
            self.fresh_item = False
            self._break()
        elif tag == "tr" and self.cells:
            self.cells.pop()
        elif tag == "table":
            self._break()
        elif tag == "pre" and self.preformatted:
            self.preformatted -= 1
            self.out.append("\n```")
            self._break()
        elif tag in ("ac:link", "a") and self.link_start:
            self._close_link(*self.link_start.pop())
        elif tag in _BLOCK_TAGS or tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
            self._break()

    def _close_macro(self, macro: dict[str, str]) -> None:
        if macro["name"] == "code" or macro["body"]:
            self._break()
            self.out.append(f"```{macro['language'].strip()}\n{macro['body'].strip(chr(10))}\n```")
            self._break()

    def _close_link(self, start: int, target: str) -> None:
        shown = "".join(self.out[start:]).strip()
        if not shown and target:
            self.out.append(target)
        elif target.startswith(("http://", "https://")) and target != shown:
            self.out.append(f" ({target})")

    def handle_data(self, data: str) -> None:
        if self.macros and "capture" in self.macros[-1]:
            self.macros[-1][self.macros[-1]["capture"]] += data
            return
        if self.skipping:
            return
        if self.preformatted:
            self.out.append(data)
            return
        text = re.sub(r"\s+", " ", data)
        if not self.out or self.out[-1].endswith(("\n", " ")):
            text = text.lstrip()
        if text:
            self.out.append(text)
            self.fresh_item = False

    def unknown_decl(self, data: str) -> None:
        # Python's html.parser hands a `<![CDATA[...]]>` section here as `CDATA[...`.
        if data.startswith("CDATA["):
            self._cdata(data.removeprefix("CDATA["))

    def handle_comment(self, data: str) -> None:
        # Newer parsers treat CDATA outside foreign content as a bogus comment `[CDATA[...]]`.
        if data.startswith("[CDATA["):
            self._cdata(data.removeprefix("[CDATA[").removesuffix("]]"))

    def _cdata(self, data: str) -> None:
        if self.macros and "capture" in self.macros[-1]:
            self.macros[-1][self.macros[-1]["capture"]] += data
        elif not self.skipping and data:
            self.out.append(data)
            self.fresh_item = False


_VOID = frozenset({"br", "hr", "img", "ac:image", "ri:page", "ri:user", "ri:attachment"})
