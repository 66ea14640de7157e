"""A run's regulated track, read from its audit events: the forge request, its approvals, the
change request and the CAB's word, the QA and UAT sign-offs, and the merge.

Shared by `codefactory runs show` (`runs/report.py`) and `codefactory audit explain`
(`audit/explain.py`). Only the log is read (each item cites its event's index, so explain
can prove it); event names are the ones their writers record: `pull-request-opened`,
`forge-publish-failed` (review/forges/publishing.py), `forge-approval-recorded`,
`forge-approval-refused` (runs/review.py), `change-request-filed`, `change-request-failed`
(review/change_requests.py), `cab-approval-awaited`, `cab-approval-check-failed`,
`cab-approval-delivered`, `cab-approved`, `cab-rejected` (runs/hand_off.py),
`sign-off-signed`, `sign-off-refused` (runs/sign_offs.py), `merge-recorded`,
`merge-unapproved` (review/reconcile.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from codefactory.audit.port import AuditRecord

Item = dict[str, Any]


def _fields(*names: str) -> Callable[[AuditRecord], Item]:
    def pick(record: AuditRecord) -> Item:
        return {name: record.data.get(name, "") for name in names}

    return pick


def _forge_request(record: AuditRecord) -> Item:
    """`opened_for`: whose grant opened it (the sponsor; older events name them as actor)."""
    return {
        **_fields("forge", "repository", "number", "url", "author", "commit", "branch")(record),
        "opened_for": record.data.get("sponsor") or record.actor,
    }


def _cab(decision: str, *names: str) -> Callable[[AuditRecord], Item]:
    def pick(record: AuditRecord) -> Item:
        return {"decision": decision, **_fields(*names)(record)}

    return pick


def _merge(outcome: str) -> Callable[[AuditRecord], Item]:
    def pick(record: AuditRecord) -> Item:
        found = _fields(
            "forge", "request", "repository", "merged_by", "merged_by_person", "merged_commit",
            "packaged_commit", "merge_commit", "run_state", "why",
        )(record)  # fmt: skip
        return {"outcome": outcome, **found}

    return pick


SECTIONS: dict[str, dict[str, Callable[[AuditRecord], Item]]] = {
    "forge_requests": {
        "pull-request-opened": _forge_request,
        "forge-publish-failed": _fields("forge", "repository", "step", "error"),
    },
    "forge_approvals": {
        "forge-approval-recorded": _fields("forge", "request", "review_id", "commit"),
        "forge-approval-refused": _fields(
            "forge", "request", "review_id", "commit", "claimed_reviewer", "reason"
        ),
    },
    "change_requests": {
        "change-request-filed": _fields("number", "sys_id", "attached"),
        "change-request-failed": _fields("number", "error"),
    },
    "cab": {
        "cab-approved": _cab("approved", "number", "sys_id"),
        "cab-rejected": _cab("rejected", "number", "sys_id", "reason"),
        "cab-approval-awaited": _cab("awaited", "number", "approval", "reason"),
        "cab-approval-check-failed": _cab("check failed", "number", "error"),
        "cab-approval-delivered": _cab("notice", "number", "said_approval"),
    },
    "sign_offs": {
        "sign-off-signed": _fields(
            "stage",
            "verdict",
            "reason",
            "statement_digest",
            "key_fingerprint",
            "commit",
            "statement",
        ),  # fmt: skip
        "sign-off-refused": _fields("stage", "claimed_signer", "reason"),
    },
    "merges": {"merge-recorded": _merge("recorded"), "merge-unapproved": _merge("unapproved")},
}
"""Each section of the track: event name → what of it is shown."""


def regulated_track(events: Sequence[AuditRecord]) -> dict[str, list[Item]]:
    """The run's regulated track from its `events` (oldest first): for each section of
    `SECTIONS`, one item per event, with `event` (its name), `index` (its leaf index), `at`
    (ISO 8601), `actor` and the fields shown."""
    track: dict[str, list[Item]] = {section: [] for section in SECTIONS}
    for record in events:
        for section, readers in SECTIONS.items():
            reader = readers.get(record.name)
            if reader is not None:
                track[section].append(
                    {
                        "event": record.name,
                        "index": record.seq,
                        "at": record.at.isoformat(),
                        "actor": record.actor,
                        **reader(record),
                    }
                )
    return track


def track_items(track: dict[str, list[Item]]) -> list[tuple[Item, str]]:
    """Each item of the track with its line for a terminal (plain text: escape it for Rich
    markup before printing), section by section."""
    return [
        (item, _LINES[section](item)) for section in SECTIONS for item in track.get(section, [])
    ]


def track_lines(track: dict[str, list[Item]]) -> list[str]:
    """The track as plain lines for a terminal (`track_items`' lines)."""
    return [line for _, line in track_items(track)]


def _request_line(item: Item) -> str:
    if item["event"] == "forge-publish-failed":
        return f"forge:      NOT PUBLISHED on {item['forge']} ({item['step']}): {item['error']}"
    return (
        f"forge:      {item['forge']} request #{item['number']} {item['url']} on "
        f"{item['repository']}, opened under {item['opened_for']}'s grant "
        f"(author {item['author'] or '?'}), head {str(item['commit'])[:12]}"
    )


def _approval_line(item: Item) -> str:
    if item["event"] == "forge-approval-refused":
        return (
            f"forge review: REFUSED {item['forge']} #{item['request']} review "
            f"{item['review_id']} by {item['claimed_reviewer']}: {item['reason']}"
        )
    return (
        f"forge review: approved by {item['actor']} on {item['forge']} #{item['request']} "
        f"(review {item['review_id']}, commit {str(item['commit'])[:12]}) at {item['at']}"
    )


def _change_line(item: Item) -> str:
    if item["event"] == "change-request-failed":
        return f"change:     NOT FILED in ServiceNow: {item['error']}"
    return f"change:     {item['number']} filed in ServiceNow (sys_id {item['sys_id']})"


def _cab_line(item: Item) -> str:
    said = {
        "approved": "APPROVED by the CAB",
        "rejected": f"REJECTED by the CAB: {item.get('reason', '')}",
        "awaited": f"waiting for the CAB (approval `{item.get('approval') or '?'}`)",
        "check failed": f"ServiceNow could not be asked: {item.get('error', '')}",
        "notice": f"notice from ServiceNow (said `{item.get('said_approval', '')}`)",
    }[item["decision"]]
    return f"cab:        {item['number'] or '-'}: {said} at {item['at']}"


def _sign_off_line(item: Item) -> str:
    stage = str(item["stage"]).upper()
    if item["event"] == "sign-off-refused":
        return f"sign-off:   {stage} REFUSED ({item['claimed_signer']}): {item['reason']}"
    because = f": {item['reason']}" if item["reason"] else ""
    return (
        f"sign-off:   {stage} {item['verdict']} by {item['actor']}{because}, statement "
        f"{item['statement_digest']}, key {item['key_fingerprint']}"
    )


def _merge_line(item: Item) -> str:
    where = f"{item['forge']} #{item['request']} by {item['merged_by']}"
    if item["outcome"] == "unapproved":
        return f"merge:      UNAPPROVED MERGE on {where}: {item['why']}"
    return f"merge:      recorded on {where}, head {str(item['merged_commit'])[:12]}"


_LINES: dict[str, Callable[[Item], str]] = {
    "forge_requests": _request_line,
    "forge_approvals": _approval_line,
    "change_requests": _change_line,
    "cab": _cab_line,
    "sign_offs": _sign_off_line,
    "merges": _merge_line,
}
