"""Outside text reaches Slack as text: no links, mentions or broadcasts it did not write."""

from __future__ import annotations

from codefactory.review.notifications import Notice, slack_escaped


def test_a_hostile_ticket_title_is_shown_not_rendered() -> None:
    notice = Notice(
        run_id="r-1",
        repository="acme/payments",
        title="<https://evil.example/sso|Open it on the dashboard> <!here> & co",
        asked="review",
    )
    text = slack_escaped(notice.text())
    assert "<" not in text and ">" not in text
    assert (
        "&lt;https://evil.example/sso|Open it on the dashboard&gt; &lt;!here&gt; &amp; co" in text
    )
