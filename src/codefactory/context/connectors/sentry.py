"""Sentry issues with their latest event, through Sentry's web API (`/api/0/`): the issue
(`GET /organizations/{org}/issues/{id}/`), its latest event
(`GET /organizations/{org}/issues/{id}/events/latest/`) and the issue search
(`GET /organizations/{org}/issues/?query=…&project=…`).

An issue is read only when its project's slug is in the connector's `sentry-project` scope;
otherwise it is `OutOfScope` and none of its text is kept. The event is rendered as one
text: the exception with its stack trace as Python prints it (most recent call last), the
last breadcrumbs and the tags. The event's `user` object, `user` tags and the request's
headers, cookies and body are never added: personal data the engine does not need
(what remains in messages and breadcrumbs is masked by `MaskingConnector`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from codefactory.context.credentials import source_parts
from codefactory.context.errors import MalformedResponse, NotFound, OutOfScope
from codefactory.context.http import VendorClient, path_segment
from codefactory.context.port import ContextItem, Scope
from codefactory.context.text import clip

if TYPE_CHECKING:
    from codefactory.config import Settings

NAME = "sentry"
SCOPE_KIND = "sentry-project"
_ISSUE_ID = re.compile(r"[0-9]{1,20}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_BREADCRUMBS = 20
MAX_SEARCH_LIMIT = 100
"""The most issues Sentry's issue list answers in one page."""
_PERSONAL_TAGS = ("user", "user.")


def phrase(query: str) -> str:
    """`query` as one quoted free-text term of Sentry's search syntax (`"…"`, with `\\`
    and `"` escaped, control characters removed), so it cannot add `project:` or other
    key:value filters."""
    text = _CONTROL.sub(" ", query).strip()
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class SentryConnector:
    """Issues of the scoped projects of one Sentry organisation."""

    name = NAME

    def __init__(
        self,
        client: VendorClient,
        organization: str,
        scope: Scope,
        data_class: str,
        max_item_chars: int,
    ) -> None:
        if scope.kind != SCOPE_KIND or not organization:
            raise ValueError(
                f"sentry: needs an organization and a {SCOPE_KIND} scope, got "
                f"{organization!r} and {scope.kind}"
            )
        self.client = client
        self.organization = organization
        self.scope = scope
        self.data_class = data_class
        self.max_item_chars = max_item_chars
        self._project_ids: dict[str, str] | None = None

    @property
    def _base(self) -> str:
        return f"/api/0/organizations/{path_segment(self.organization)}"

    def search(self, query: str, *, limit: int = 10) -> list[ContextItem]:
        """Issues of the scoped projects matching `query` (one quoted phrase, see `phrase`),
        up to `limit`, as summaries without their events; an answer naming a project out of
        scope is dropped. Raises `ValueError` for an empty query, or a `ContextError`."""
        if not _CONTROL.sub("", query).strip():
            raise ValueError("sentry: the search text is empty")
        project_ids = list(self.project_ids())
        if not project_ids:
            return []
        params: dict[str, Any] = {
            "query": phrase(query),
            "project": project_ids,
            "limit": str(min(max(limit, 1), MAX_SEARCH_LIMIT)),
        }
        issues = self.client.get_json(f"{self._base}/issues/", params)
        if not isinstance(issues, list):
            raise MalformedResponse(NAME, "the issue search did not answer a list of issues")
        in_scope = [issue for issue in issues if self._in_scope(issue)]
        return [self._item(issue, None) for issue in in_scope[:limit]]

    def fetch(self, ref: str) -> ContextItem:
        """Issue `ref` (its numeric id) with its latest event rendered as text; the item's
        `related` are the in-app frames' files (`repository:service/callbacks.py`).

        Raises `NotFound` for an id that is not numeric or not known, `OutOfScope` when the
        issue belongs to a project outside the scope (its event is then not read)."""
        issue = self._issue(ref)
        event = self._latest_event(ref)
        item = self._item(issue, event)
        files = tuple(f"repository:{name}" for name in in_app_files(event))
        return item.with_text(item.text, related=files)

    def stack_files(self, issue_id: str) -> list[str]:
        """The repository-relative files of the in-app frames of the issue's latest event
        (`service/callbacks.py`), most recent call first, each once; absolute paths and paths
        with `..` are left out (they cannot name a repository file). Raises as `fetch`."""
        self._issue(issue_id)
        return in_app_files(self._latest_event(issue_id))

    def project_ids(self) -> dict[str, str]:
        """The scoped projects' numeric ids → slugs, read once (`GET /api/0/projects/{org}/
        {slug}/` per slug: exact, where the organisation's project list is paged). Raises
        `NotFound` for a scoped slug the organisation does not have."""
        if self._project_ids is None:
            resolved: dict[str, str] = {}
            for slug in self.scope.values:
                path = f"/api/0/projects/{path_segment(self.organization)}/{path_segment(slug)}/"
                project = self.client.get_json(path)
                if not isinstance(project, dict) or project.get("slug") != slug:
                    raise MalformedResponse(NAME, f"the project {slug} answer is not that project")
                resolved[str(project.get("id", ""))] = slug
            self._project_ids = resolved
        return self._project_ids

    def _issue(self, issue_id: str) -> dict[str, Any]:
        if not _ISSUE_ID.fullmatch(issue_id):
            raise NotFound(NAME, f"{issue_id!r} is not a Sentry issue id (a number)")
        issue = self.client.get_json(f"{self._base}/issues/{issue_id}/")
        if not isinstance(issue, dict):
            raise MalformedResponse(NAME, f"issue {issue_id} did not answer an object")
        if not self._in_scope(issue):
            raise OutOfScope(
                NAME, f"issue {issue_id} belongs to a project outside the scope {self.scope}"
            )
        return issue

    def _in_scope(self, issue: Any) -> bool:
        project = issue.get("project") if isinstance(issue, dict) else None
        slug = project.get("slug") if isinstance(project, dict) else None
        return isinstance(slug, str) and self.scope.allows(slug)

    def _latest_event(self, issue_id: str) -> dict[str, Any]:
        event = self.client.get_json(f"{self._base}/issues/{issue_id}/events/latest/")
        if not isinstance(event, dict):
            raise MalformedResponse(NAME, f"the latest event of issue {issue_id} is not an object")
        return event

    def _item(self, issue: dict[str, Any], event: dict[str, Any] | None) -> ContextItem:
        issue_id = str(issue.get("id") or "")
        if not issue_id:
            raise MalformedResponse(NAME, "an issue has no id")
        title = f"{issue.get('shortId') or issue_id}: {issue.get('title', '')}"
        lines = [
            title,
            f"culprit: {issue.get('culprit', '')}",
            f"project: {issue['project']['slug']}",
            f"level: {issue.get('level', '')}  status: {issue.get('status', '')}",
            f"events: {issue.get('count', '')}  users: {issue.get('userCount', '')}",
            f"first seen: {issue.get('firstSeen', '')}  last seen: {issue.get('lastSeen', '')}",
        ]
        if event is not None:
            lines += ["", event_text(event)]
        text, truncated = clip("\n".join(lines), self.max_item_chars)
        permalink = issue.get("permalink")
        return ContextItem(
            source=NAME,
            id=issue_id,
            title=title,
            text=text,
            data_class=self.data_class,
            uri=permalink if isinstance(permalink, str) else "",
            truncated=truncated,
        )


def event_text(event: dict[str, Any]) -> str:
    """An event as text: its message, the exception(s) with stack traces (oldest chained
    exception first, as Python prints them), the last `MAX_BREADCRUMBS` breadcrumbs, the
    request's method and URL, and the tags without `user` ones."""
    parts = [f"event {event.get('eventID', '')} at {event.get('dateCreated', '')}"]
    if event.get("message"):
        parts.append(f"message: {event['message']}")
    for kind, data in _entries(event):
        if kind == "exception":
            parts.append(_exceptions_text(data))
        elif kind == "breadcrumbs":
            parts.append(_breadcrumbs_text(data))
        elif kind == "request":
            # Method and URL only: headers, cookies, body and env carry personal data.
            parts.append(f"request: {data.get('method', '')} {data.get('url', '')}".rstrip())
    tags = [
        f"  {tag.get('key')}={tag.get('value')}"
        for tag in event.get("tags") or []
        if isinstance(tag, dict) and not str(tag.get("key", "")).startswith(_PERSONAL_TAGS)
    ]
    if tags:
        parts.append("tags:\n" + "\n".join(tags))
    return "\n\n".join(parts)


def in_app_files(event: dict[str, Any]) -> list[str]:
    """The in-app frames' filenames of `event`, most recent call first, each once."""
    files: list[str] = []
    for exception in reversed(_exception_values(event)):
        for frame in reversed(_frames(exception)):
            name = str(frame.get("filename") or "").removeprefix("./")
            if not frame.get("inApp") or not name or name.startswith("/"):
                continue
            if ".." in name.split("/") or name in files:
                continue
            files.append(name)
    return files


def _entries(event: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    entries = event.get("entries") or []
    if not isinstance(entries, list):
        raise MalformedResponse(NAME, "the event's entries are not a list")
    return [
        (str(entry.get("type")), entry["data"])
        for entry in entries
        if isinstance(entry, dict) and isinstance(entry.get("data"), dict)
    ]


def _exception_values(event: dict[str, Any]) -> list[dict[str, Any]]:
    values: list[dict[str, Any]] = []
    for kind, data in _entries(event):
        if kind == "exception":
            values += [v for v in data.get("values") or [] if isinstance(v, dict)]
    return values


def _frames(exception: dict[str, Any]) -> list[dict[str, Any]]:
    stacktrace = exception.get("stacktrace") or {}
    frames = stacktrace.get("frames") if isinstance(stacktrace, dict) else None
    return [f for f in frames or [] if isinstance(f, dict)]


def _exceptions_text(data: dict[str, Any]) -> str:
    values = [v for v in data.get("values") or [] if isinstance(v, dict)]
    chained = "\n\nThe above exception led to the following exception:\n\n"
    return chained.join(_exception_text(value) for value in values)


def _exception_text(exception: dict[str, Any]) -> str:
    lines = ["Traceback (most recent call last):"]
    for frame in _frames(exception):
        where = frame.get("filename") or frame.get("absPath") or frame.get("module") or "?"
        marker = "  [in app]" if frame.get("inApp") else ""
        lines.append(
            f'  File "{where}", line {frame.get("lineNo", "?")}, '
            f"in {frame.get('function') or '?'}{marker}"
        )
        context_line = str(frame.get("context_line") or "").strip()
        if context_line:
            lines.append(f"    {context_line}")
    lines.append(f"{exception.get('type', 'Exception')}: {exception.get('value', '')}")
    return "\n".join(lines)


def _breadcrumbs_text(data: dict[str, Any]) -> str:
    crumbs = [c for c in data.get("values") or [] if isinstance(c, dict)][-MAX_BREADCRUMBS:]
    lines = [f"breadcrumbs (last {len(crumbs)}):"]
    for crumb in crumbs:
        details = crumb.get("data") if isinstance(crumb.get("data"), dict) else {}
        extra = " ".join(f"{key}={value}" for key, value in (details or {}).items())
        lines.append(
            f"  {crumb.get('timestamp', '')} [{crumb.get('level', '')}] "
            f"{crumb.get('category', '')}: {crumb.get('message') or ''} {extra}".rstrip()
        )
    return "\n".join(lines)


def sentry_connector(settings: Settings) -> SentryConnector | None:
    """The connector `settings` configure (`sentry.*`, `context.sentry.*`), or None when the
    instance, the organisation or the scope is not set. Raises `SourceUnauthorized` when
    the token file cannot be read."""
    service, context = settings.sentry, settings.context
    if not service.organization:
        return None
    parts = source_parts(NAME, SCOPE_KIND, service, context.sentry, context)
    if parts is None:
        return None
    return SentryConnector(
        parts.client, service.organization, parts.scope, parts.data_class, parts.max_item_chars
    )
