"""What a ticket points at, as `(source, ref)` pairs a connector can fetch.

Read from the trigger itself (a Sentry alert names its issue, a Jira ticket is an issue, a
ServiceNow incident has a number, a Datadog alert a monitor), from the URLs it carries
(`/browse/PAY-7`, `/issues/4509012345/`, `/pages/98765/`, `/monitors/123`), from incident
numbers and test ids in its text, and from the `related` citations of fetched items. These
are pointers only: each is fetched through the run's governed connectors, which decide scope
and policy; nothing here widens what a run may read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from codefactory.domain import TriggerEvent

Ref = tuple[str, str]

_URL = re.compile(r"https?://[^\s<>()\"']+")
_URL_REFS: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("jira", re.compile(r"/browse/([A-Z][A-Z0-9_]+-\d+)\b"), "{0}"),
    ("jira", re.compile(r"/rest/api/\d+/issue/([A-Z][A-Z0-9_]+-\d+)\b"), "{0}"),
    ("confluence", re.compile(r"/pages/(\d+)\b"), "{0}"),
    ("confluence", re.compile(r"[?&]pageId=(\d+)\b"), "{0}"),
    ("sentry", re.compile(r"/issues/(\d+)/?"), "{0}"),
    ("datadog", re.compile(r"/monitors/(\d+)\b"), "monitor:{0}"),
)
_SERVICENOW_NUMBER = re.compile(r"\b((?:INC|KB|PRB|CHG)\d{7})\b")
_TEST_ID = re.compile(
    r"(?<![\w./-])((?:[\w.-]{1,100}/){0,16}test_[\w-]{1,100}\.py)(?:::[\w\[\]-]+)?"
)
"""Anchored where no path can continue to the left, and bounded: each position is tried
once (an unanchored repeated folder group took quadratic time on `a/a/a/...`)."""
MAX_SCANNED_CHARS = 64_000
"""Refs are looked for in the first 64,000 characters of a text (a ticket may be 1 MiB)."""
_SENTRY_ID = re.compile(r"^sentry:[^:]*:(\d+)$")
_DATADOG_ID = re.compile(r"^datadog-monitor-(\d+)$")


def refs_in_text(text: str) -> list[Ref]:
    """The refs named by URLs, ServiceNow numbers and test file ids in the first
    `MAX_SCANNED_CHARS` of `text`, in order."""
    text = text[:MAX_SCANNED_CHARS]
    found: list[Ref] = []
    for url in _URL.findall(text):
        for source, pattern, template in _URL_REFS:
            match = pattern.search(url)
            if match:
                found.append((source, template.format(match.group(1))))
                break
    found += [("servicenow", number) for number in _SERVICENOW_NUMBER.findall(text)]
    found += [("repository", path) for path in _TEST_ID.findall(text)]
    return found


def trigger_refs(trigger: TriggerEvent) -> list[Ref]:
    """What `trigger` points at, most direct first, without duplicates."""
    direct: list[Ref] = []
    if trigger.source == "jira":
        direct.append(("jira", trigger.external_id))
    elif trigger.source == "servicenow":
        direct.append(("servicenow", trigger.external_id))
    elif trigger.source == "sentry":
        match = _SENTRY_ID.match(trigger.external_id)
        if match:
            direct.append(("sentry", match.group(1)))
    elif trigger.source == "datadog":
        match = _DATADOG_ID.match(trigger.external_id)
        if match:
            direct.append(("datadog", f"monitor:{match.group(1)}"))
    for link in trigger.links:
        direct += refs_in_text(link)
    direct += refs_in_text(f"{trigger.title}\n{trigger.body}")
    return unique(direct)


def parse_citation(citation: str) -> Ref | None:
    """`("repository", "app/x.py")` from `repository:app/x.py`; None without a source."""
    source, sep, ref = citation.partition(":")
    return (source, ref) if sep and source and ref else None


def unique(refs: Iterable[Ref]) -> list[Ref]:
    """`refs` in order, each once."""
    return list(dict.fromkeys(refs))
