"""The regulated track read from audit events: every event kind its writers record becomes one
item and one line, refusals and failures named as such."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from codefactory.audit.port import AuditRecord
from codefactory.audit.regulated_track import SECTIONS, regulated_track, track_lines

AT = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def record(seq: int, name: str, actor: str = "factory", **data: Any) -> AuditRecord:
    return AuditRecord(seq=seq, name=name, actor=actor, run_id="r-1", at=AT, data=data,
                       leaf_hash="00")  # fmt: skip


EVENTS = [
    record(1, "run-state-changed", state="in_review"),  # not part of the track
    record(2, "forge-publish-failed", forge="github", repository="o/r", step="open request",
           error="forge-no-user-token", status=0, message=""),
    record(3, "pull-request-opened", sponsor="priya.shah", forge="gitlab", repository="g/p",
           number="7", url="https://gitlab.example/g/p/-/merge_requests/7", author="priya",
           commit="a" * 40, branch="factory/r-1"),
    record(4, "change-request-failed", number="", error="ServiceNow answered 503"),
    record(5, "change-request-filed", number="CHG0030001", sys_id="f" * 32, attached="x.zip"),
    record(6, "forge-approval-refused", "forge:gitlab", forge="gitlab", request="7",
           review_id="9", commit="a" * 40, claimed_reviewer="priya", reason="the sponsor"),
    record(7, "forge-approval-recorded", "user:jordan.lee", forge="gitlab", request="7",
           review_id="10", commit="a" * 40),
    record(8, "cab-approval-check-failed", number="CHG0030001", error="answered 503"),
    record(9, "cab-approval-awaited", number="CHG0030001", approval="requested", reason="…"),
    record(10, "cab-approval-delivered", "service:servicenow", number="CHG0030001",
           said_approval="rejected"),
    record(11, "cab-rejected", "service:servicenow", number="CHG0030001", sys_id="f" * 32,
           reason="cab.chair: no rollback rehearsal"),
    record(12, "sign-off-refused", "unauthenticated", claimed_signer="priya.shah", stage="qa",
           reason="the sponsor may not sign off"),
    record(13, "sign-off-signed", "user:quinn", stage="qa", verdict="reject",
           reason="totals wrong", statement_digest="sha256:ab", key_fingerprint="SHA256:k"),
    record(14, "merge-unapproved", "gitlab:mallory", forge="gitlab", request="7",
           merged_by="mallory", merged_commit="b" * 40, why="no approval of the packaged commit"),
    record(15, "merge-recorded", "user:mona", forge="gitlab", request="7", merged_by="mona",
           merged_commit="a" * 40),
]  # fmt: skip


def test_every_event_kind_becomes_an_item_of_its_section_in_order() -> None:
    track = regulated_track(EVENTS)
    assert set(track) == set(SECTIONS)
    named = {section: [i["event"] for i in items] for section, items in track.items()}
    assert named == {
        "forge_requests": ["forge-publish-failed", "pull-request-opened"],
        "forge_approvals": ["forge-approval-refused", "forge-approval-recorded"],
        "change_requests": ["change-request-failed", "change-request-filed"],
        "cab": ["cab-approval-check-failed", "cab-approval-awaited", "cab-approval-delivered",
                "cab-rejected"],
        "sign_offs": ["sign-off-refused", "sign-off-signed"],
        "merges": ["merge-unapproved", "merge-recorded"],
    }  # fmt: skip
    opened = track["forge_requests"][1]
    assert opened["opened_for"] == "priya.shah" and opened["index"] == 3
    assert opened["at"] == AT.isoformat()
    assert [c["decision"] for c in track["cab"]] == [
        "check failed",
        "awaited",
        "notice",
        "rejected",
    ]
    assert regulated_track([]) == {section: [] for section in SECTIONS}


def test_each_item_has_a_line_that_names_refusals_and_failures() -> None:
    lines = track_lines(regulated_track(EVENTS))
    assert len(lines) == len(EVENTS) - 1
    expected = [
        "forge:      NOT PUBLISHED on github (open request): forge-no-user-token",
        "forge:      gitlab request #7 https://gitlab.example/g/p/-/merge_requests/7 on g/p, "
        "opened under priya.shah's grant (author priya), head aaaaaaaaaaaa",
        "forge review: REFUSED gitlab #7 review 9 by priya: the sponsor",
        "forge review: approved by user:jordan.lee on gitlab #7 (review 10, commit aaaaaaaaaaaa)",
        "change:     NOT FILED in ServiceNow: ServiceNow answered 503",
        f"change:     CHG0030001 filed in ServiceNow (sys_id {'f' * 32})",
        "cab:        CHG0030001: ServiceNow could not be asked: answered 503",
        "cab:        CHG0030001: waiting for the CAB (approval `requested`)",
        "cab:        CHG0030001: notice from ServiceNow (said `rejected`)",
        "cab:        CHG0030001: REJECTED by the CAB: cab.chair: no rollback rehearsal",
        "sign-off:   QA REFUSED (priya.shah): the sponsor may not sign off",
        "sign-off:   QA reject by user:quinn: totals wrong, statement sha256:ab, key SHA256:k",
        "merge:      UNAPPROVED MERGE on gitlab #7 by mallory: no approval of the packaged commit",
        "merge:      recorded on gitlab #7 by mona, head aaaaaaaaaaaa",
    ]
    for line, start in zip(lines, expected, strict=True):
        assert line.startswith(start), (line, start)


def test_an_event_missing_fields_still_renders() -> None:
    bare = [record(1, event.name, event.actor) for event in EVENTS[1:]]  # no fields at all
    assert len(track_lines(regulated_track(bare))) == len(bare)
