"""Atlassian Document Format rendered to text: every documented node type, and documents
that are malformed, hostile or of a shape this renderer has never seen."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from codefactory.context.connectors.adf import MAX_DEPTH, adf_to_text
from tests.context_standins.atlassian import FIXTURES


def text(value: str, *marks: dict[str, Any]) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "text", "text": value}
    if marks:
        node["marks"] = list(marks)
    return node


def paragraph(*content: dict[str, Any]) -> dict[str, Any]:
    return {"type": "paragraph", "content": list(content)}


def doc(*content: dict[str, Any]) -> dict[str, Any]:
    return {"version": 1, "type": "doc", "content": list(content)}


def test_a_real_world_document_with_every_node_type() -> None:
    document = json.loads((FIXTURES / "adf-every-node.json").read_text(encoding="utf-8"))

    assert adf_to_text(document) == "\n".join(
        [
            "## Payment retries fail after timeout",
            "",
            "Reported by @Maria Lopez :warning: see the runbook "
            "(https://bank.atlassian.net/wiki/spaces/ENG/pages/98765/Payments+runbook) "
            "and call `retry_payment()`.",
            "Second line of the same paragraph, in bold.",
            "",
            "- gateway returns 504",
            "- retry queue grows",
            "  - nested detail",
            "",
            "3. open the dashboard",
            "4. restart the worker",
            "",
            "```python",
            "def retry(payment):",
            "    return gateway.send(payment, timeout=30)",
            "```",
            "",
            "Service | Timeout",
            "payments-api | 30 s",
            "",
            "Related: https://bank.atlassian.net/browse/PAY-8",
            "",
            "https://bank.atlassian.net/wiki/spaces/ENG/pages/98765",
            "",
            "[attachment]",
            "",
            "Panels render through their children.",
            "",
            "Unknown nodes keep their text.",
        ]
    )


def test_mentions_use_the_display_text_with_one_at_sign() -> None:
    mention = {"type": "mention", "attrs": {"id": "5b10", "text": "@Ana"}}
    bare = {"type": "mention", "attrs": {"id": "5b11", "text": "Bo"}}
    unnamed = {"type": "mention", "attrs": {"id": "5b12"}}

    assert adf_to_text(doc(paragraph(mention, text(" and "), bare, text(" "), unnamed))) == (
        "@Ana and @Bo @5b12"
    )


def test_a_link_whose_text_is_its_address_is_written_once() -> None:
    url = "https://example.com/a"
    link = {"type": "link", "attrs": {"href": url}}

    assert adf_to_text(doc(paragraph(text(url, link)))) == url


def test_hard_breaks_keep_lines_and_block_cards_give_their_url() -> None:
    card = {"type": "blockCard", "attrs": {"url": "https://bank.atlassian.net/browse/PAY-1"}}

    assert adf_to_text(doc(paragraph(text("a"), {"type": "hardBreak"}, text("b")), card)) == (
        "a\nb\n\nhttps://bank.atlassian.net/browse/PAY-1"
    )


def test_media_groups_show_each_attachment() -> None:
    media = {"type": "media", "attrs": {"id": "x", "type": "file", "collection": "c"}}
    group = {"type": "mediaGroup", "content": [media, media]}

    assert adf_to_text(doc(group)) == "[attachment]\n\n[attachment]"


def test_plain_strings_and_non_documents() -> None:
    assert adf_to_text("  Jira REST v2 text\n") == "Jira REST v2 text"
    values: list[object] = [None, 42, [], {}, {"type": "doc"}, {"type": "doc", "content": 1}]
    for value in values:
        assert adf_to_text(value) == ""


def test_malformed_nodes_render_what_can_be_read() -> None:
    document = {
        "type": "doc",
        "content": [
            {"type": "paragraph", "content": [{"type": "text"}, text("kept"), 7, None]},
            {"type": "heading", "attrs": {"level": 99}, "content": [text("Title")]},
            {"type": "orderedList", "attrs": {"order": "x"}, "content": [paragraph(text("i"))]},
            {"type": "codeBlock", "attrs": None, "content": [text("code"), {"type": "emoji"}]},
            {"type": "table", "content": ["row", {"type": "tableRow", "content": "cells"}]},
            {"type": "mention", "attrs": "broken"},
            {"type": "text", "text": "with bad marks", "marks": ["link", {"type": "link"}]},
        ],
    }

    assert adf_to_text(document) == (
        "kept\n\n# Title\n\n1. i\n\n```\ncode\n```\n\n@someonewith bad marks"
    )


def test_deep_nesting_is_cut_not_a_crash() -> None:
    node: dict[str, Any] = paragraph(text("bottom"))
    for _ in range(20_000):
        node = {"type": "blockquote", "content": [node]}

    rendered = adf_to_text(doc(node))

    assert "bottom" not in rendered  # deeper than MAX_DEPTH levels is not rendered
    shallow: dict[str, Any] = paragraph(text("reached"))
    for _ in range(MAX_DEPTH - 3):
        shallow = {"type": "panel", "content": [shallow]}
    assert adf_to_text(doc(shallow)) == "reached"


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["type", "content", "attrs", "text", "marks", "level", "url", "order"]),
            children | st.sampled_from(["doc", "paragraph", "text", "table", "listItem", "link"]),
            max_size=5,
        )
    ),
    max_leaves=30,
)


@settings(max_examples=100, deadline=None)
@given(_json)
def test_any_json_renders_to_a_string(value: object) -> None:
    assert isinstance(adf_to_text(value), str)
