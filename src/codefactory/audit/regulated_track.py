"""A run's regulated track, read from its audit events: the forge request, its approvals, the
change request and the CAB's word, the QA and UAT sign-offs, and the merge.

Shared by `codefactory runs show` (`runs/report.py`) and `codefactory audit explain`
(`audit/explain.py`). Only the log is read (each item cites its event's index, so explain
can prove it); each event is decoded (`audit.events.typed`) and matched on its class. The
events, by the names their writers record: `pull-request-opened`,
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

from codefactory.audit.events import (
    CabApprovalAwaited,
    CabApprovalCheckFailed,
    CabApprovalDelivered,
    CabApproved,
    CabRejected,
    ChangeRequestFailed,
    ChangeRequestFiled,
    ForgeApprovalRecorded,
    ForgeApprovalRefused,
    ForgePublishFailed,
    MergeRecorded,
    MergeUnapproved,
    PullRequestOpened,
    SignOffRefused,
    SignOffSigned,
    typed,
)
from codefactory.audit.port import AuditRecord
from codefactory.domain import AuditEvent

Item = dict[str, Any]

SECTIONS = ("forge_requests", "forge_approvals", "change_requests", "cab", "sign_offs", "merges")
"""The sections of the track, in order."""


def _placed(event: AuditEvent) -> tuple[str, Item] | None:
    """The section `event` belongs to and what of it is shown; None: not on the track."""
    match event:
        case PullRequestOpened():
            return "forge_requests", {
                "forge": event.forge, "repository": event.repository, "number": event.number,
                "url": event.url, "author": event.author, "commit": event.commit,
                "branch": event.branch,
                # whose grant opened it: the sponsor (older events name them as the actor)
                "opened_for": event.sponsor or event.actor,
            }  # fmt: skip
        case ForgePublishFailed(forge=forge, repository=repository, step=step, error=error):
            return "forge_requests", {
                "forge": forge, "repository": repository, "step": step, "error": error
            }  # fmt: skip
        case ForgeApprovalRecorded() | ForgeApprovalRefused():
            where = {
                "forge": event.forge, "request": event.request, "review_id": event.review_id,
                "commit": event.commit,
            }  # fmt: skip
            if isinstance(event, ForgeApprovalRefused):
                where.update(
                    claimed_reviewer=event.claimed_reviewer or "", reason=event.reason or ""
                )
            return "forge_approvals", where
        case ChangeRequestFiled(number=number, sys_id=sys_id, attached=attached):
            return "change_requests", {"number": number, "sys_id": sys_id, "attached": attached}
        case ChangeRequestFailed(number=number, error=error):
            return "change_requests", {"number": number, "error": error}
        case CabApproved(number=number, sys_id=sys_id):
            return "cab", {"decision": "approved", "number": number, "sys_id": sys_id}
        case CabRejected(number=number, sys_id=sys_id, reason=reason):
            return "cab", {
                "decision": "rejected", "number": number, "sys_id": sys_id, "reason": reason
            }  # fmt: skip
        case CabApprovalAwaited(number=number, approval=approval, reason=reason):
            return "cab", {
                "decision": "awaited", "number": number, "approval": approval, "reason": reason
            }  # fmt: skip
        case CabApprovalCheckFailed(number=number, error=error):
            return "cab", {"decision": "check failed", "number": number, "error": error}
        case CabApprovalDelivered(number=number, said_approval=said):
            return "cab", {"decision": "notice", "number": number, "said_approval": said}
        case SignOffSigned():
            return "sign_offs", {
                "stage": event.stage, "verdict": event.verdict, "reason": event.reason,
                "statement_digest": event.statement_digest,
                "key_fingerprint": event.key_fingerprint, "commit": event.commit,
                "statement": event.statement,
            }  # fmt: skip
        case SignOffRefused(stage=stage, claimed_signer=signer, reason=reason):
            return "sign_offs", {
                "stage": stage or "", "claimed_signer": signer or "", "reason": reason
            }  # fmt: skip
        case MergeRecorded() | MergeUnapproved():
            return "merges", {
                "outcome": "unapproved" if isinstance(event, MergeUnapproved) else "recorded",
                "forge": event.forge, "request": event.request, "repository": event.repository,
                "merged_by": event.merged_by, "merged_by_person": event.merged_by_person,
                "merged_commit": event.merged_commit, "packaged_commit": event.packaged_commit,
                "merge_commit": event.merge_commit, "run_state": event.run_state,
                "why": event.why if isinstance(event, MergeUnapproved) else "",
            }  # fmt: skip
    return None


def regulated_track(events: Sequence[AuditRecord]) -> dict[str, list[Item]]:
    """The run's regulated track from its `events` (oldest first): for each section of
    `SECTIONS`, one item per event, with `event` (its name), `index` (its leaf index), `at`
    (ISO 8601), `actor` and the fields shown."""
    track: dict[str, list[Item]] = {section: [] for section in SECTIONS}
    for record in events:
        placed = _placed(typed(record))
        if placed is not None:
            section, shown = placed
            track[section].append(
                {
                    "event": record.name,
                    "index": record.seq,
                    "at": record.at.isoformat(),
                    "actor": record.actor,
                    **shown,
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
