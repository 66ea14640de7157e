"""Every webhook adapter on recorded deliveries: signatures, parsing, and bad input.

GitHub's payloads are the real ones in ../shared/fixtures; the other senders' are written
in their documented formats (tests/fixtures/webhooks/README.md).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codefactory.domain import ChangeKind
from codefactory.triggers.errors import DeliveryInvalid, SignatureInvalid
from codefactory.triggers.port import Delivery, ParsedDelivery
from codefactory.triggers.registry import webhook_source, webhook_sources
from codefactory.triggers.settings import WEBHOOK_SOURCES, TriggerSettings
from tests.conftest import SHARED_FIXTURES
from tests.fixtures.webhooks.signed import HERE, SECRETS, WORK, headers, restamp

GITHUB = SHARED_FIXTURES / "webhooks" / "github"
ADAPTERS = webhook_sources(TriggerSettings())


def delivery(source: str, body: bytes, sent: dict[str, str]) -> Delivery:
    lowered = {k.lower(): v for k, v in sent.items()}
    return Delivery(source=source, headers=lowered, body=body, received_at=datetime.now(UTC))


def read(source: str, body: bytes, **kwargs: str) -> ParsedDelivery:
    signed = delivery(source, body, headers(source, body, **kwargs))
    adapter = ADAPTERS[source]
    adapter.verify(signed, SECRETS[source])
    return adapter.read(signed)


def github(event: str, name: str) -> bytes:
    path = GITHUB / event / name
    if not path.is_file():
        pytest.skip(f"shared fixture data missing: {path}")
    return path.read_bytes()


# --- GitHub, on the real payloads -------------------------------------------------------


def test_every_real_github_payload_is_read_or_ignored_never_an_error() -> None:
    files = sorted(GITHUB.glob("*/*.json"))
    if not files:
        pytest.skip("shared GitHub fixtures missing")
    for path in files:
        parsed = read("github", path.read_bytes(), event=path.parent.name)
        assert (parsed.trigger is None) == bool(parsed.ignored), path


def test_a_github_issue_labeled_with_a_work_label_asks_for_that_kind() -> None:
    document = json.loads(github("issues", "labeled.payload.json"))
    assert read("github", json.dumps(document).encode(), event="issues").ignored  # `bug`
    document["label"]["name"] = "lint"
    parsed = read("github", json.dumps(document).encode(), event="issues", delivery_id="d-7")
    event = parsed.trigger
    assert event is not None and parsed.delivery_id == "d-7"
    assert (event.kind, event.external_id, event.actor) == (
        ChangeKind.FIX_LINT,
        "Codertocat/Hello-World#1",
        "Codertocat",
    )
    assert event.repository == "Codertocat/Hello-World" and not event.autonomous
    assert event.event == "issues.labeled" and event.payload_digest.startswith("sha256:")
    assert event.links == ("https://github.com/Codertocat/Hello-World/issues/1",)


def test_a_github_factory_comment_is_a_command_and_other_comments_are_not() -> None:
    document = json.loads(github("issue_comment", "created.payload.json"))
    assert (
        "no `/factory` command"
        in read("github", json.dumps(document).encode(), event="issue_comment").ignored
    )
    document["comment"]["body"] = "/factory lint\nplease"
    event = read("github", json.dumps(document).encode(), event="issue_comment").trigger
    assert event is not None and event.kind is ChangeKind.FIX_LINT
    assert event.body.endswith("/factory lint\nplease")


def test_failed_checks_and_workflows_and_dependabot_alerts_ask_for_work() -> None:
    check = read("github", github("check_run", "completed.1.payload.json"), event="check_run")
    assert check.trigger is not None and check.trigger.kind is ChangeKind.FIX_LINT
    assert check.trigger.autonomous
    workflow = json.loads(github("workflow_run", "completed.payload.json"))
    assert read("github", json.dumps(workflow).encode(), event="workflow_run").ignored
    workflow["workflow_run"]["conclusion"] = "failure"
    failed = read("github", json.dumps(workflow).encode(), event="workflow_run").trigger
    assert failed is not None and failed.external_id == "octo-org/octo-repo@workflow_run/289782451"
    alert = read(
        "github", github("dependabot_alert", "created.payload.json"), event="dependabot_alert"
    )
    assert alert.trigger is not None and alert.trigger.kind is ChangeKind.BUMP_DEPENDENCY
    assert alert.trigger.attributes["package"] == "semver"


def test_a_github_delivery_with_a_wrong_or_missing_signature_is_refused() -> None:
    body = github("issues", "labeled.payload.json")
    forged = delivery("github", body, headers("github", body, event="issues", secret="wrong"))
    with pytest.raises(SignatureInvalid, match="does not match"):
        ADAPTERS["github"].verify(forged, SECRETS["github"])
    bare = delivery("github", body, {"X-GitHub-Event": "issues"})
    with pytest.raises(SignatureInvalid, match="missing"):
        ADAPTERS["github"].verify(bare, SECRETS["github"])


# --- the other senders, on their documented formats -------------------------------------


@pytest.mark.parametrize(("source", "name", "event"), WORK, ids=[w[1] for w in WORK])
def test_each_recorded_delivery_verifies_and_asks_for_work(
    source: str, name: str, event: str
) -> None:
    body = restamp(source, (HERE / name).read_bytes())
    parsed = read(source, body, event=event)
    assert parsed.trigger is not None, parsed.ignored
    assert parsed.trigger.source == source and parsed.delivery_id
    assert parsed.trigger.title and parsed.trigger.repository
    forged = delivery(source, body, headers(source, body, event=event, secret="not-it"))
    with pytest.raises(SignatureInvalid):
        ADAPTERS[source].verify(forged, SECRETS[source])


def test_what_each_sender_says_lands_in_the_event() -> None:
    jira = read("jira", restamp("jira", (HERE / "jira/issue-updated.ready.json").read_bytes()))
    assert jira.trigger is not None and jira.sent_at is not None
    assert (jira.trigger.external_id, jira.trigger.repository) == ("SVC-102", "SVC")
    assert (
        jira.trigger.attributes["status"] == "Ready"
        and jira.trigger.actor == "priya.shah@bank.example"
    )
    sentry = read("sentry", (HERE / "sentry/event-alert.triggered.json").read_bytes())
    assert sentry.trigger is not None and sentry.trigger.repository == "front-end"
    assert "heck is not defined" in sentry.trigger.body and sentry.trigger.autonomous
    slack = read("slack", (HERE / "slack/slash-command.txt").read_bytes())
    assert slack.trigger is not None
    assert (slack.trigger.kind, slack.trigger.repository, slack.trigger.actor) == (
        ChangeKind.FIX_LINT,
        "sample-service",
        "priya.shah",
    )
    datadog = read(
        "datadog", restamp("datadog", (HERE / "datadog/monitor-triggered.json").read_bytes())
    )
    assert datadog.trigger is not None and datadog.trigger.repository == "sample-service"
    recovered = read("datadog", (HERE / "datadog/monitor-recovered.json").read_bytes())
    assert recovered.trigger is None and "Recovered" in recovered.ignored


def test_sentry_carries_suspect_commits_when_a_relay_attached_them() -> None:
    document = json.loads((HERE / "sentry/event-alert.triggered.json").read_bytes())
    document["data"]["committers"] = [
        {
            "author": {"name": "Dev"},
            "commits": [{"id": "a" * 40, "message": "Fix hostnames\n\nmore"}],
        }
    ]
    event = read("sentry", json.dumps(document).encode()).trigger
    assert event is not None
    assert event.attributes["suspect_commits"] == "a" * 40 + " Fix hostnames"
    assert f"suspect commit {'a' * 40} Fix hostnames" in event.body


def test_deliveries_without_a_delivery_id_are_malformed() -> None:
    body = (HERE / "gitlab/note-hook.issue.json").read_bytes()
    sent = headers("gitlab", body)
    del sent["Idempotency-Key"]
    with pytest.raises(DeliveryInvalid, match="Idempotency-Key"):
        ADAPTERS["gitlab"].read(delivery("gitlab", body, sent))


def test_the_registry_knows_every_documented_source() -> None:
    assert tuple(ADAPTERS) == WEBHOOK_SOURCES
    for name in WEBHOOK_SOURCES:
        assert webhook_source(name, TriggerSettings()).name == name


# --- bad input: every parser raises DeliveryInvalid or answers, nothing else -------------

JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=6)
    ),
    max_leaves=20,
)


def mutated(source: str) -> st.SearchStrategy[bytes]:
    """Recorded bodies with random subtrees replaced, plus arbitrary bytes."""
    names = [name for s, name, _ in WORK if s == source]
    if source == "github":
        names = []
    bodies = [(HERE / name).read_bytes() for name in names]

    def graft(body: bytes, path: list[str], value: object) -> bytes:
        try:
            document = json.loads(body)
        except ValueError:
            return body
        node = document
        for key in path[:-1]:
            if isinstance(node, dict) and isinstance(node.get(key), dict):
                node = node[key]
        if isinstance(node, dict) and path:
            node[path[-1]] = value
        return json.dumps(document).encode()

    keys = st.lists(
        st.sampled_from(
            [
                "data",
                "issue",
                "fields",
                "event",
                "object_attributes",
                "changelog",
                "items",
                "project",
                "user",
                "labels",
                "key",
                "summary",
                "title",
                "id",
                "alert_transition",
                "tags",
                "sys_id",
                "number",
                "cmdb_ci",
                "type",
                "kind",
                "repository",
                "requested_by",
                "note",
                "action",
            ]
        ),
        min_size=1,
        max_size=3,
    )
    grafted = st.builds(graft, st.sampled_from(bodies), keys, JSONISH) if bodies else st.nothing()
    return st.one_of(
        st.binary(max_size=300), JSONISH.map(lambda v: json.dumps(v).encode()), grafted
    )


@pytest.mark.parametrize("source", WEBHOOK_SOURCES)
def test_parsers_take_any_body_and_raise_only_delivery_invalid(source: str) -> None:
    adapter = ADAPTERS[source]

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        body=mutated(source),
        event=st.sampled_from(
            [
                "issues",
                "issue_comment",
                "check_run",
                "event_alert",
                "issue",
                "error",
                "Note Hook",
                "",
            ]
        ),
    )
    def check(body: bytes, event: str) -> None:
        sent = headers(source, body, event=event)
        signed = delivery(source, body, sent)
        adapter.verify(signed, SECRETS[source])
        try:
            parsed = adapter.read(signed)
        except DeliveryInvalid as err:
            assert err.source == source
            return
        assert parsed.delivery_id
        if parsed.trigger is not None:
            json.dumps(parsed.trigger.attributes)  # storable
            parsed.trigger.title.encode("utf-8")

    check()


@given(body=st.binary(max_size=200), signature=st.text(max_size=80))
@settings(max_examples=80, deadline=None)
def test_forged_signatures_never_verify(body: bytes, signature: str) -> None:
    for source in ("github", "jira", "sentry"):
        name = {
            "github": "X-Hub-Signature-256",
            "jira": "X-Hub-Signature",
            "sentry": "Sentry-Hook-Signature",
        }[source]
        forged = delivery(source, body, {name: signature, "Request-ID": "r"})
        with pytest.raises(SignatureInvalid):
            ADAPTERS[source].verify(forged, SECRETS[source])


def test_settings_refuse_unknown_sources_and_bad_cron(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no webhook source named gitea"):
        TriggerSettings.model_validate({"secrets": {"gitea": "x"}})
    with pytest.raises(ValueError, match="not a cron expression"):
        TriggerSettings.model_validate(
            {
                "schedules": [
                    {
                        "name": "n",
                        "cron": "every day",
                        "repository": "r",
                        "kind": "fix_lint",
                        "title": "t",
                    }
                ]
            }
        )
