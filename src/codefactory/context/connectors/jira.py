"""Jira Cloud issues with their comments through REST v3: `GET /rest/api/3/issue/{key}`,
the enhanced search `POST /rest/api/3/search/jql`, and an issue's remote links
(`GET /rest/api/3/issue/{key}/remotelink`) for the Confluence pages it points at.

An issue key names its project (`PAY-123` is in `PAY`); a key outside the connector's
`jira-project` scope is refused before any request. The search's JQL is written here, never
by the caller: the caller's words become one quoted string in one `text ~` clause
(`atlassian_string`), and a result outside the scope is dropped even if Jira returned it.
Descriptions and comment bodies are Atlassian Document Format, rendered by `adf_to_text`.
Shapes: https://developer.atlassian.com/cloud/jira/platform/rest/v3/
"""

from __future__ import annotations

import re
import unicodedata
from typing import TYPE_CHECKING, Any

from codefactory.context.connectors.adf import adf_to_text
from codefactory.context.credentials import source_parts
from codefactory.context.errors import ContextError, MalformedResponse, OutOfScope
from codefactory.context.http import VendorClient, path_segment
from codefactory.context.port import ContextItem, Scope
from codefactory.context.refs import refs_in_text, unique
from codefactory.context.text import clip

if TYPE_CHECKING:
    from codefactory.config import Settings

NAME = "jira"
SCOPE_KIND = "jira-project"
ISSUE_KEY = re.compile(r"^(?P<project>[A-Z][A-Z0-9_]+)-\d+$")
"""A Jira issue key (`PAY-123`); its project key is what the scope names."""
PROJECT_KEY = re.compile(r"^[A-Z][A-Z0-9_]+$")
MAX_QUERY_CHARS = 500
"""Longer search text is cut: a search is a few words, not a document."""
MAX_RESULTS = 100
"""Jira's own ceiling for `maxResults` on `search/jql`."""
ISSUE_FIELDS = ("summary", "description", "status", "issuetype", "priority", "labels")
FETCH_FIELDS = (*ISSUE_FIELDS, "comment", "issuelinks")
SEARCH_FIELDS = ("summary", "status", "description")
_PAGE_ID = re.compile(r"(?:/pages/|[?&]pageId=)(\d+)")


def atlassian_string(value: str) -> str:
    """`value` as one double-quoted JQL/CQL string literal: control and format characters
    become spaces, runs of space collapse, `\\` and `"` are escaped, at most
    `MAX_QUERY_CHARS` characters. The literal cannot be closed from inside, so the caller's
    text can never add a clause (JQL and CQL share this string syntax)."""
    printable = "".join(
        " " if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp") else char for char in value
    )
    text = " ".join(printable.split())[:MAX_QUERY_CHARS]
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def search_words(connector: str, query: str) -> str:
    """The query as a JQL/CQL string literal; `ContextError` when nothing searchable is
    left (an empty query would be a clause Jira and Confluence refuse)."""
    literal = atlassian_string(query)
    if literal == '""':
        raise ContextError(connector, "the search query is empty")
    return literal


class JiraConnector:
    """Jira issues of the projects in `scope` (`Scope(kind="jira-project", values=("PAY",))`).

    `fetch("PAY-123")` answers the issue as one text: key, summary, status, type, priority,
    labels, description, comments in order (author, time, body) and linked issue keys (with
    their summaries only for linked issues inside the scope). `search` answers issues whose
    text matches, newest update first. Texts longer than `max_item_chars` are clipped."""

    name = NAME

    def __init__(
        self, client: VendorClient, scope: Scope, data_class: str, max_item_chars: int
    ) -> None:
        if scope.kind != SCOPE_KIND or not scope.values:
            raise ValueError(f"jira: the scope must be a non-empty {SCOPE_KIND}, got {scope}")
        for project in scope.values:
            if not PROJECT_KEY.match(project):
                raise ValueError(f"jira: {project!r} is not a Jira project key")
        self.client = client
        self.scope = scope
        self.data_class = data_class
        self.max_item_chars = max_item_chars

    def fetch(self, ref: str) -> ContextItem:
        """The issue `ref` (`PAY-123`). Raises `OutOfScope` (not a key, or another
        project; no request made), `NotFound`, or another `ContextError`."""
        key = self._in_scope(ref)
        answer = self.client.get_json(
            f"/rest/api/3/issue/{path_segment(key)}", {"fields": ",".join(FETCH_FIELDS)}
        )
        issue = _issue(answer, key)
        text = _render_issue(issue, self.scope)
        item = self._item(issue, text)
        return item.with_text(item.text, related=self._related(key, issue, text))

    def _related(self, key: str, issue: dict[str, Any], text: str) -> tuple[str, ...]:
        """Citations the issue points at: its linked issues in the scope, its remote links
        (Confluence pages, Sentry issues) and the URLs and numbers in its text; a
        remote-link list that cannot be read leaves the others (the issue itself was read)."""
        try:
            urls = self._remote_link_urls(key)
        except ContextError:
            urls = []
        linked = [("jira", other) for other in _linked_keys(issue) if self._allows(other)]
        found = [*linked, *refs_in_text("\n".join([*urls, text]))]
        return tuple(f"{source}:{ref}" for source, ref in unique(found) if ref != key)

    def _remote_link_urls(self, key: str) -> list[str]:
        return [url for link in self._remote_links(key) if (url := _link_url(link))]

    def _remote_links(self, key: str) -> list[dict[str, Any]]:
        """The issue's remote links (REST v3 `remotelink`), objects only."""
        links = self.client.get_json(f"/rest/api/3/issue/{path_segment(key)}/remotelink")
        if not isinstance(links, list):
            raise MalformedResponse(self.name, f"the remote links of {key} are not a list")
        return [link for link in links if isinstance(link, dict)]

    def search(self, query: str, *, limit: int = 10) -> list[ContextItem]:
        """Up to `limit` (1–100) issues of the scope whose text matches `query` (plain
        words), most recently updated first."""
        projects = ",".join(atlassian_string(project) for project in self.scope.values)
        jql = (
            f"project in ({projects}) AND text ~ {search_words(self.name, query)} "
            "ORDER BY updated DESC"
        )
        body = {
            "jql": jql,
            "fields": list(SEARCH_FIELDS),
            "maxResults": max(1, min(limit, MAX_RESULTS)),
        }
        answer = self.client.post_json("/rest/api/3/search/jql", body)
        if not isinstance(answer, dict) or not isinstance(answer.get("issues"), list):
            raise MalformedResponse(self.name, "search/jql answered without an `issues` list")
        items = []
        for found in answer["issues"]:
            key = found.get("key") if isinstance(found, dict) else None
            if not isinstance(key, str) or not self._allows(key):
                continue  # defence in depth: Jira answered outside the JQL's projects
            items.append(self._item(found, _render_issue(found, self.scope)))
        return items[:limit]

    def linked_pages(self, key: str) -> list[str]:
        """Confluence page ids (`"98765"`) named by the issue's remote links
        (`.../pages/<id>/...` or `pageId=<id>` in the link's URL or global id), in link
        order without repeats. The pages themselves are the Confluence connector's to
        fetch (and to refuse when their space is outside its scope)."""
        pages: list[str] = []
        for link in self._remote_links(self._in_scope(key)):
            for where in (_link_url(link), link.get("globalId")):
                match = _PAGE_ID.search(where) if isinstance(where, str) else None
                if match and match.group(1) not in pages:
                    pages.append(match.group(1))
        return pages

    def _allows(self, key: str) -> bool:
        match = ISSUE_KEY.match(key)
        return match is not None and self.scope.allows(match.group("project"))

    def _in_scope(self, ref: str) -> str:
        key = ref.strip()
        match = ISSUE_KEY.match(key)
        if match is None:
            raise OutOfScope(self.name, f"{ref[:80]!r} is not a Jira issue key (PROJECT-123)")
        if not self.scope.allows(match.group("project")):
            raise OutOfScope(
                self.name, f"{key} is in project {match.group('project')}, outside {self.scope}"
            )
        return key

    def _item(self, issue: dict[str, Any], text: str) -> ContextItem:
        key = str(issue["key"])
        fields = _fields(issue)
        clipped, truncated = clip(text, self.max_item_chars)
        return ContextItem(
            source=self.name,
            id=key,
            title=f"{key}: {_str(fields.get('summary'))}",
            text=clipped,
            data_class=self.data_class,
            uri=f"{self.client.base_url.rstrip('/')}/browse/{key}",
            truncated=truncated,
        )


def jira_connector(settings: Settings) -> JiraConnector | None:
    """The connector `settings` configure (`jira.base_url`, `jira.user`, `jira.token_file`,
    `context.jira.scope` and `.data_class`, `context.max_item_chars` and
    `.max_response_bytes`); None when the base URL or the scope is empty. Reads the token
    file now (`SourceUnauthorized` when it is missing or empty)."""
    context = settings.context
    parts = source_parts(NAME, SCOPE_KIND, settings.jira, context.jira, context)
    if parts is None:
        return None
    return JiraConnector(parts.client, parts.scope, parts.data_class, parts.max_item_chars)


def _issue(answer: object, key: str) -> dict[str, Any]:
    if not isinstance(answer, dict) or not isinstance(answer.get("fields"), dict):
        raise MalformedResponse(NAME, f"the issue {key} was answered without its fields")
    if answer.get("key") != key:
        # Jira answers a moved issue under its new key; a new key may be in another project.
        raise OutOfScope(NAME, f"{key} was answered as {_str(answer.get('key'))!r}")
    return answer


def _fields(issue: dict[str, Any]) -> dict[str, Any]:
    found = issue.get("fields")
    return found if isinstance(found, dict) else {}


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _strings(value: object) -> list[str]:
    return [x for x in value if isinstance(x, str)] if isinstance(value, list) else []


def _named(value: object) -> str:
    """`status.name`, `issuetype.name`, `priority.name`."""
    return _str(value.get("name")) if isinstance(value, dict) else ""


def _render_issue(issue: dict[str, Any], scope: Scope) -> str:
    fields = _fields(issue)
    head = [f"{issue['key']}: {_str(fields.get('summary'))}"]
    for label, value in (
        ("Status", _named(fields.get("status"))),
        ("Type", _named(fields.get("issuetype"))),
        ("Priority", _named(fields.get("priority"))),
        ("Labels", ", ".join(_strings(fields.get("labels")))),
    ):
        if value:
            head.append(f"{label}: {value}")
    sections = ["\n".join(head)]
    description = adf_to_text(fields.get("description"))
    if description:
        sections.append(f"Description:\n{description}")
    sections.extend(_comments(fields.get("comment")))
    links = _links(fields.get("issuelinks"), scope)
    if links:
        sections.append("Linked issues:\n" + "\n".join(links))
    return "\n\n".join(sections)


def _link_url(link: dict[str, Any]) -> str:
    """A remote link's `object.url`, or ""."""
    target = link.get("object")
    url = target.get("url") if isinstance(target, dict) else None
    return url if isinstance(url, str) else ""


def _linked_keys(issue: dict[str, Any]) -> list[str]:
    """The keys of the issues `issuelinks` names (either direction), in order."""
    keys: list[str] = []
    links = _fields(issue).get("issuelinks")
    for link in links if isinstance(links, list) else []:
        for side in ("outwardIssue", "inwardIssue"):
            other = link.get(side) if isinstance(link, dict) else None
            key = other.get("key") if isinstance(other, dict) else None
            if isinstance(key, str) and key not in keys:
                keys.append(key)
    return keys


def _comments(comment: object) -> list[str]:
    """`Comment by <name> at <time>:` and its body, in Jira's order (oldest first)."""
    found = comment.get("comments") if isinstance(comment, dict) else None
    rendered = []
    for entry in found if isinstance(found, list) else []:
        if not isinstance(entry, dict):
            continue
        author = entry.get("author")
        name = _str(author.get("displayName")) if isinstance(author, dict) else ""
        when = _str(entry.get("created"))[:16].replace("T", " ")
        rendered.append(
            f"Comment by {name or 'unknown'} at {when}:\n{adf_to_text(entry.get('body'))}"
        )
    total = comment.get("total") if isinstance(comment, dict) else None
    if isinstance(total, int) and total > len(rendered):
        rendered.append(f"[{total - len(rendered)} more comments not shown]")
    return rendered


def _links(links: object, scope: Scope) -> list[str]:
    """`- blocks PAY-8: summary`; an issue outside the scope is named by its key only."""
    lines = []
    for link in links if isinstance(links, list) else []:
        if not isinstance(link, dict):
            continue
        found_type = link.get("type")
        kind: dict[str, Any] = found_type if isinstance(found_type, dict) else {}
        for side, verb in (("outwardIssue", "outward"), ("inwardIssue", "inward")):
            other = link.get(side)
            if not isinstance(other, dict) or not isinstance(other.get("key"), str):
                continue
            key = other["key"]
            match = ISSUE_KEY.match(key)
            relation = _str(kind.get(verb)) or "relates to"
            if match and scope.allows(match.group("project")):
                lines.append(f"- {relation} {key}: {_str(_fields(other).get('summary'))}")
            else:
                lines.append(f"- {relation} {key}")
    return lines
