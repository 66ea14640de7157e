"""The Jira ticket parser: real REST shapes (v2 text and v3 ADF descriptions), bad input."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codefactory.domain import ChangeKind
from codefactory.triggers.errors import TicketInvalid
from codefactory.triggers.jira import JiraTicketSource, adf_text, kind_from_labels

REPORTER = {
    "name": "priya.shah",
    "displayName": "Priya Shah",
    "accountId": "5b10ac8d82e05b22cc7d4ef5",
}


def ticket(**fields: object) -> bytes:
    base: dict[str, object] = {
        "summary": "Upgrade idna",
        "description": "CVE-2024-3651",
        "labels": ["security"],
        "reporter": REPORTER,
    }
    base.update(fields)
    return json.dumps(
        {
            "id": "10101",
            "key": "SVC-101",
            "self": "https://jira.example/rest/api/2/issue/10101",
            "fields": base,
        }
    ).encode()


def test_a_v2_ticket_becomes_a_trigger_event() -> None:
    event = JiraTicketSource().parse(ticket(), repository="/srv/repo")
    assert event.source == "jira"
    assert event.external_id == "SVC-101"
    assert event.kind is ChangeKind.BUMP_DEPENDENCY
    # the reporter is only an untrusted attribute: intake sets the sender (the caller)
    assert event.attributes["reporter"] == "priya.shah" and event.sender == ""
    assert event.body == "CVE-2024-3651"
    assert event.links == ("https://jira.example/rest/api/2/issue/10101",)
    assert event.payload_digest.startswith("sha256:") and len(event.payload_digest) == 71


def test_a_v3_atlassian_document_description_is_read_as_text() -> None:
    adf = {
        "type": "doc",
        "version": 1,
        "content": [
            {"type": "paragraph", "content": [{"type": "text", "text": "First line"}]},
            {"type": "paragraph", "content": [{"type": "text", "text": "Second"}]},
        ],
    }
    event = JiraTicketSource().parse(
        ticket(description=adf, reporter={"accountId": "abc"}), repository="r"
    )
    assert event.body == "First line\nSecond"
    assert event.attributes["reporter"] == "abc"


@pytest.mark.parametrize(
    ("labels", "kind"),
    [
        (("dependencies",), ChangeKind.BUMP_DEPENDENCY),
        (("LINT",), ChangeKind.FIX_LINT),
        (("tech-debt", "ci"), ChangeKind.MODIFY_CI),
        (("terraform",), ChangeKind.MODIFY_INFRASTRUCTURE),
        ((), ChangeKind.GENERAL_CHANGE),
    ],
)
def test_labels_pick_the_kind_of_change(labels: tuple[str, ...], kind: ChangeKind) -> None:
    assert kind_from_labels(labels) is kind


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[]", "must be a JSON object"),
        (b'{"key": "SVC-1"}', "no `fields` object"),
        (ticket(summary=""), "no `fields.summary`"),
        (ticket(summary="Fix\nReviewed-by: mallory"), "the summary refused: character 3"),
        (ticket(labels=["lint\u200b"]), "label 0 refused: character 4 is a format"),
        (b"[" * 100 + b"]" * 100, "nested deeper than 64 levels"),
        (ticket(labels="security"), "list of strings"),
    ],
)
def test_bad_tickets_are_named_errors(payload: bytes, reason: str) -> None:
    with pytest.raises(TicketInvalid, match=reason.replace("`", ".").replace("(", r"\(")):
        JiraTicketSource().parse(payload, repository="r")


def test_a_ticket_without_a_reporter_is_read() -> None:
    event = JiraTicketSource().parse(ticket(reporter=None), repository="r")
    assert "reporter" not in event.attributes


def test_a_key_with_newlines_is_refused() -> None:
    document = json.loads(ticket())
    document["key"] = "SVC-1\nOn-Behalf-Of: user:ceo\nReviewed-by: mallory"
    with pytest.raises(TicketInvalid, match="the ticket key refused: character 5 is a control"):
        JiraTicketSource().parse(json.dumps(document).encode(), repository="r")


def test_a_ticket_without_a_key_is_refused() -> None:
    payload = json.dumps({"fields": {"summary": "x", "reporter": REPORTER}}).encode()
    with pytest.raises(TicketInvalid, match="no `key`"):
        JiraTicketSource().parse(payload, repository="r")


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise_anything_but_ticket_invalid(payload: bytes) -> None:
    try:
        JiraTicketSource().parse(payload, repository="r")
    except TicketInvalid:
        pass


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
        max_leaves=20,
    )
)
def test_arbitrary_json_fields_never_crash_the_parser(fields: object) -> None:
    payload = json.dumps({"key": "SVC-1", "fields": fields}).encode()
    try:
        JiraTicketSource().parse(payload, repository="r")
    except TicketInvalid:
        pass


def test_adf_text_ignores_unknown_nodes() -> None:
    assert adf_text({"type": "mention", "attrs": {}}) == ""
    assert adf_text(42) == ""


def test_adf_keeps_the_text_of_mentions_breaks_cards_code_and_lists() -> None:
    """Issue 10: an ADF description as Jira Cloud sends it keeps every piece of its text."""
    description = {
        "type": "doc",
        "version": 1,
        "content": [
            {"type": "paragraph", "content": [
                {"type": "mention", "attrs": {"id": "5b10ac8d82e05b22cc7d4ef5",
                                              "text": "@Priya Shah", "accessLevel": ""}},
                {"type": "text", "text": " please fix"},
                {"type": "hardBreak"},
                {"type": "text", "text": "see "},
                {"type": "inlineCard", "attrs": {"url": "https://sentry.example/issues/42/"}},
            ]},
            {"type": "codeBlock", "attrs": {"language": "python"}, "content": [
                {"type": "text", "text": "callback_allowed('https://x:8443/')\nTrue"}]},
            {"type": "bulletList", "content": [
                {"type": "listItem", "content": [
                    {"type": "paragraph", "content": [{"type": "text", "text": "port 8443"}]}]},
                {"type": "listItem", "content": [
                    {"type": "paragraph", "content": [
                        {"type": "text", "text": "link", "marks": [
                            {"type": "link", "attrs": {"href": "https://docs.example"}}]}]}]},
            ]},
            {"type": "paragraph", "content": [
                {"type": "status", "attrs": {"text": "BLOCKED", "color": "red"}},
                {"type": "text", "text": " since "},
                {"type": "date", "attrs": {"timestamp": "1764374400000"}},
                {"type": "emoji", "attrs": {"shortName": ":fire:", "text": "🔥"}},
            ]},
        ],
    }  # fmt: skip
    assert adf_text(description) == (
        "Priya Shah please fix\nsee https://sentry.example/issues/42/\n"
        "callback_allowed('https://x:8443/')\nTrue\n"
        "- port 8443\n- link\n"
        "BLOCKED since 2025-11-29🔥"
    )
