"""Issue 11: deliveries the factory does not trust. Each finding is reproduced first (a
replayed signed body, an unsigned Sentry timestamp, a payload-chosen sponsor, deeply nested
signed JSON, control characters in names), then the whole kind is shown gone; rejections are
rate-limited and aggregated."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from codefactory.dispatch.service import Dispatch, build_dispatch
from codefactory.domain import RunState
from codefactory.factory import Factory, build_factory
from codefactory.policy.cedar import default_policy_path
from codefactory.web.app import create_app
from tests.directory_helpers import person, standard_directory
from tests.fixtures.webhooks.signed import HERE, headers, restamp
from tests.integration.test_webhooks import labeled, post, sample_repo, settings_for


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return sample_repo(tmp_path)


@pytest.fixture
def factory(tmp_path: Path, repo: Path) -> Factory:
    return build_factory(settings_for(tmp_path, repo))


@pytest.fixture
def dispatch(factory: Factory) -> Dispatch:
    return build_dispatch(factory, workers=0)


@pytest.fixture
def app(factory: Factory, dispatch: Dispatch) -> Any:
    return create_app(factory, dispatch)


def events(factory: Factory, name: str) -> list[dict[str, Any]]:
    return [record.data for record in factory.audit.events() if record.name == name]


def github(app: Any, body: bytes, delivery_id: str | None = None) -> Any:
    answer = post(
        app,
        "/webhooks/github",
        body,
        headers("github", body, event="issues", delivery_id=delivery_id),
    )
    return answer


def test_a_signed_github_body_under_a_new_delivery_id_is_the_first_run(
    app: Any, factory: Factory, dispatch: Dispatch
) -> None:
    body = labeled()
    first = github(app, body, "g-first").json()
    replayed = github(app, body, "g-second")  # the attacker only changes X-GitHub-Delivery
    assert replayed.status_code == 202
    again = replayed.json()
    assert again["run_id"] == first["run_id"] and again["duplicate"] is True
    assert again["delivery_id"] == "g-first"  # the first delivery's receipt
    assert len(factory.store.search_runs()) == 1
    dispatch.stop()  # repeats are counted per minute: published when it ends, or at shutdown
    duplicate = events(factory, "webhook-duplicate")[-1]
    assert (duplicate["delivery_id"]["text"], duplicate["first_delivery_id"]) == (
        "g-second",
        "g-first",
    )
    assert duplicate["count"] == 1
    assert "webhook-duplicate" in [r.name for r in factory.store.audit_events(first["run_id"])]


def test_a_sentry_body_with_a_fresh_unsigned_timestamp_is_no_new_run(
    app: Any, factory: Factory
) -> None:
    body = restamp("sentry", (HERE / "sentry" / "issue.created.json").read_bytes())
    first = post(app, "/webhooks/sentry", body, headers("sentry", body, event="issue")).json()
    later = headers("sentry", body, event="issue", at=time.time() + 120)  # new id, new stamp
    again = post(app, "/webhooks/sentry", body, later).json()
    assert again["run_id"] == first["run_id"] and again["duplicate"] is True
    # the unsigned header dates nothing: an old one is no reason to refuse either
    old = headers("sentry", b'{"action": "x"}', event="issue", at=time.time() - 86_400)
    assert post(app, "/webhooks/sentry", b'{"action": "x"}', old).status_code == 202


def test_the_sponsor_is_never_a_payload_field(app: Any, factory: Factory) -> None:
    body = restamp("webhook", (HERE / "webhook" / "change-requested.json").read_bytes())
    receipt = post(app, "/webhooks/webhook", body, headers("webhook", body)).json()
    # `data.requested_by: priya.shah` is a claim: the key may act for nobody by default
    assert receipt["status"] == "refused", receipt
    assert "does not let the webhook key 'webhook' act for priya.shah" in receipt["reason"]
    run = factory.store.require_run(receipt["run_id"])
    assert run.sponsor == "" and run.state is RunState.REFUSED
    refused = events(factory, "sponsor-refused")[-1]
    assert (refused["sender_kind"], refused["sender"]) == ("webhook", "webhook")


def test_a_webhook_key_acts_for_whom_policy_says(tmp_path: Path, repo: Path) -> None:
    policy = tmp_path / "policy.cedar"
    policy.write_text(
        default_policy_path().read_text()
        + '\n@id("audit-key-acts-for-priya")\n@reason("the audit system asks for Priya")\n'
        'permit (principal == Webhook::"webhook", action == Action::"act-for",\n'
        '        resource == Person::"priya.shah");\n'
    )
    settings = settings_for(tmp_path, repo).model_copy(update={"policy_file": policy})
    factory = build_factory(settings)
    app = create_app(factory, build_dispatch(factory, workers=0))
    body = restamp("webhook", (HERE / "webhook" / "change-requested.json").read_bytes())
    receipt = post(app, "/webhooks/webhook", body, headers("webhook", body)).json()
    assert receipt["status"] == "queued", receipt
    run = factory.store.require_run(receipt["run_id"])
    trigger = factory.store.get_trigger(run.trigger_id)
    assert run.sponsor == "priya.shah" and trigger is not None
    assert trigger.caused_by == "user:priya.shah"
    assert trigger.attributes["requested_by"] == "priya.shah"
    other = json.loads(body)
    other["data"]["requested_by"] = "jordan.lee"  # a person the key may not act for
    body = json.dumps(other).encode()
    refused = post(app, "/webhooks/webhook", body, headers("webhook", body)).json()
    assert refused["status"] == "refused" and "act for jordan.lee" in refused["reason"]


@pytest.mark.parametrize(
    ("people", "reason"),
    [
        ({}, "the github identity 'Codertocat' is not in the directory"),
        (
            {"mallory": person("Mallory", roles=["reviewer"], github="Codertocat")},
            "is mallory, who does not hold the `sponsor` role",
        ),
    ],
    ids=["unknown-sender", "no-sponsor-role"],
)
def test_only_senders_the_directory_knows_as_sponsors_sponsor(
    tmp_path: Path, repo: Path, people: dict[str, Any], reason: str
) -> None:
    from codefactory.identity.settings import IdentitySettings
    from tests.directory_helpers import write_directory

    directory = write_directory(tmp_path / "people" / "directory.toml", people)
    settings = settings_for(tmp_path, repo).model_copy(
        update={"identity": IdentitySettings(directory_file=directory)}
    )
    factory = build_factory(settings)
    receipt = github(create_app(factory, build_dispatch(factory, workers=0)), labeled()).json()
    assert receipt["status"] == "refused" and reason in receipt["reason"], receipt
    assert reason in events(factory, "sponsor-refused")[-1]["reason"]


def test_an_autonomous_alert_is_sponsored_by_the_configured_person_only_if_known(
    tmp_path: Path, repo: Path
) -> None:
    directory = standard_directory(tmp_path / "people", {"priya.shah": person("Priya", roles=[])})
    from codefactory.identity.settings import IdentitySettings

    settings = settings_for(tmp_path, repo).model_copy(
        update={"identity": IdentitySettings(directory_file=directory)}
    )
    factory = build_factory(settings)  # priya.shah is known but holds no role now
    app = create_app(factory, build_dispatch(factory, workers=0))
    body = (
        Path(__file__).resolve().parents[2].parent
        / "shared/fixtures/webhooks/github/dependabot_alert/created.payload.json"
    )
    if not body.is_file():
        pytest.skip(f"shared fixture data missing: {body}")
    raw = body.read_bytes()
    answer = post(app, "/webhooks/github", raw, headers("github", raw, event="dependabot_alert"))
    receipt = answer.json()
    assert receipt["status"] == "refused"
    assert (
        "the configured sponsor 'priya.shah' is priya.shah, who does not hold"
        in (receipt["reason"])
    )


def test_deeply_nested_signed_json_is_a_400_never_a_500(
    app: Any, factory: Factory, dispatch: Dispatch
) -> None:
    document = json.loads(labeled())
    document["issue"]["body"] = "DEEP"
    levels = 100_000  # past any recursion limit: json.loads alone raises RecursionError
    nested = '{"a": [' * (levels // 2) + '"x"' + "]}" * (levels // 2)
    body = json.dumps(document).replace('"DEEP"', nested).encode()
    answer = github(app, body)
    assert answer.status_code == 400 and "nested deeper than 64 levels" in answer.json()["detail"]
    for source, text in (("jira", b'{"a":' * 5000 + b"1" + b"}" * 5000),):
        refused = post(app, f"/webhooks/{source}", text, headers(source, text))
        assert refused.status_code == 400 and "nested deeper" in refused.json()["detail"]
    dispatch.stop()
    counted = {
        (e["source"], e["reason"]): e["count"] for e in events(factory, "webhook-rejections")
    }
    assert counted == {("github", "json-depth"): 1, ("jira", "json-depth"): 1}


CONTROLLED = [
    (("issue", "title"), "Fix\nReviewed-by: mallory <m@x>", "the title refused"),
    (("sender", "login"), "Codertocat\u200b", "the actor refused"),
    (("issue", "number"), "1\nOn-Behalf-Of: user:ceo", "the external id refused"),
    (("issue", "labels"), [{"name": "lint\u202e"}], "label 0 refused"),
]


def test_control_characters_in_names_are_refused_at_intake(
    app: Any, factory: Factory, dispatch: Dispatch
) -> None:
    for (where, key), value, what in CONTROLLED:  # title, sender, key (a trailer), label
        document = json.loads(labeled())
        document[where][key] = value
        body = json.dumps(document).encode()
        answer = github(app, body)
        assert answer.status_code == 400, answer.text
        assert what in answer.json()["detail"] and "U+" in answer.json()["detail"]
    assert factory.store.search_runs() == []
    dispatch.stop()
    counted = events(factory, "webhook-rejections")
    assert [(e["reason"], e["count"]) for e in counted] == [("control-characters", 4)]


def test_rejections_are_rate_limited_and_aggregated_with_capped_hashed_fields(
    tmp_path: Path, repo: Path
) -> None:
    settings = settings_for(tmp_path, repo, rejections_per_minute=3)
    factory = build_factory(settings)
    dispatch = build_dispatch(factory, workers=0)
    app = create_app(factory, dispatch)
    body = labeled()
    huge_id = "d" * 60_000  # an unsigned request used to add a 60 KB audit event
    statuses = []
    for _ in range(5):
        forged = headers("github", body, event="issues", secret="wrong", delivery_id=huge_id)
        statuses.append(post(app, "/webhooks/github", body, forged).status_code)
    assert statuses == [401, 401, 401, 429, 429]
    # a delivery whose signature verifies is never refused by the budget
    assert github(app, body).status_code == 202
    before = len(list(factory.audit.events()))
    dispatch.stop()
    counted = events(factory, "webhook-rejections")
    assert len(list(factory.audit.events())) - before == len(counted) == 2
    by_reason = {e["reason"]: e for e in counted}
    assert (by_reason["signature"]["count"], by_reason["rate-limited"]["count"]) == (3, 2)
    first = by_reason["signature"]["first_delivery_id"]
    assert len(first["text"]) == 128 and first["chars"] == "60000"
    assert len(first["sha256"]) == 64
    assert max(len(json.dumps(e)) for e in counted) < 2_000


def test_the_jira_sender_is_who_moved_the_issue_not_its_reporter(
    app: Any, factory: Factory
) -> None:
    document = json.loads((HERE / "jira" / "issue-updated.ready.json").read_bytes())
    document["issue"]["fields"]["reporter"] = {"accountId": "5b10a2844c20165700ede21g"}
    body = restamp("jira", json.dumps(document).encode())
    receipt = post(app, "/webhooks/jira", body, headers("jira", body)).json()
    run = factory.store.require_run(receipt["run_id"])
    trigger = factory.store.get_trigger(run.trigger_id)
    assert trigger is not None and trigger.sender == "5b10ac8d82e05b22cc7d4ef5"
    assert run.sponsor == "priya.shah" and trigger.caused_by == "user:priya.shah"


def test_settings_reject_a_webhook_key_name_with_control_characters() -> None:
    from pydantic import ValidationError

    from codefactory.triggers.settings import TriggerSettings

    with pytest.raises(ValidationError):
        TriggerSettings(webhook_key="ci\nkey")


EXPECTED_SENDERS = {  # file → (sender kind, sender, sponsor, caused by)
    "gitlab/issue-hook.labeled.json": ("gitlab", "root", "priya.shah", "user:priya.shah"),
    "gitlab/note-hook.issue.json": ("gitlab", "root", "priya.shah", "user:priya.shah"),
    "jira/issue-updated.ready.json": (
        "jira", "5b10ac8d82e05b22cc7d4ef5", "priya.shah", "user:priya.shah",
    ),
    # an incident is autonomous: the binding's sponsor; who opened it caused it
    "servicenow/incident-created.json": (
        "servicenow", "jordan.lee", "priya.shah", "user:jordan.lee",
    ),
    "sentry/event-alert.triggered.json": ("", "", "priya.shah", ""),
    "sentry/issue.created.json": ("", "", "priya.shah", ""),
    "datadog/monitor-triggered.json": ("", "", "priya.shah", ""),
    "slack/slash-command.txt": ("slack", "U2147483697", "priya.shah", "user:priya.shah"),
    "webhook/change-requested.json": ("webhook", "webhook", "", ""),  # act-for: default deny
}  # fmt: skip


def test_every_source_names_its_sender_and_sponsor(app: Any, factory: Factory) -> None:
    from tests.fixtures.webhooks.signed import WORK

    for source, name, event in WORK:
        body = restamp(source, (HERE / name).read_bytes())
        receipt = post(app, f"/webhooks/{source}", body, headers(source, body, event=event))
        run = factory.store.require_run(receipt.json()["run_id"])
        trigger = factory.store.get_trigger(run.trigger_id)
        assert trigger is not None
        found = (trigger.sender_kind, trigger.sender, run.sponsor, trigger.caused_by)
        assert found == EXPECTED_SENDERS[name], (name, run.reason)


def post_many(
    app: Any, path: str, requests: list[tuple[bytes, dict[str, str]]], peer: str = "127.0.0.1"
) -> list[httpx.Response]:
    """Send `requests` in order over one client from the peer address `peer`."""

    async def call() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app, client=(peer, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            return [await client.post(path, content=b, headers=h) for b, h in requests]

    return asyncio.run(call())


def test_replays_under_fresh_unsigned_ids_are_one_counted_audit_event(
    app: Any, factory: Factory, dispatch: Dispatch
) -> None:
    """Red team 2: 500 replays of one captured signed body under fresh 200-character
    X-GitHub-Delivery ids were 500 permanent audit events of the attacker's text."""
    body = labeled()
    first = github(app, body, "g-original").json()
    before = len(list(factory.audit.events()))
    replays = [
        (body, headers("github", body, event="issues", delivery_id=f"{i:04d}" + "r" * 196))
        for i in range(60)
    ]
    answers = post_many(app, "/webhooks/github", replays)
    assert {(a.status_code, a.json()["run_id"], a.json()["duplicate"]) for a in answers} == {
        (202, first["run_id"], True)
    }
    assert len(list(factory.audit.events())) == before  # counted, nothing written yet
    dispatch.stop()
    added = list(factory.audit.events())[before:]
    assert [record.name for record in added] == ["webhook-duplicate"]
    data = added[0].data
    assert (data["count"], data["delivery_ids"], data["first_delivery_id"]) == (
        60,
        60,
        "g-original",
    )
    assert data["payload_digest"] == "sha256:" + hashlib.sha256(body).hexdigest()
    assert len(data["delivery_id"]["text"]) == 128 and data["delivery_id"]["chars"] == "200"
    assert len(json.dumps(data)) < 1_000
    assert len(factory.store.search_runs()) == 1


def test_a_signed_delivery_is_never_refused_by_the_rejection_budget(
    tmp_path: Path, repo: Path
) -> None:
    """Red team 3 (intake half): a client past its budget of bad deliveries still has its
    validly signed ones accepted; the budget is the peer address's, whatever the headers."""
    factory = build_factory(settings_for(tmp_path, repo, rejections_per_minute=5))
    dispatch = build_dispatch(factory, workers=0)
    app = create_app(factory, dispatch)
    bad = {"X-GitHub-Event": "issues", "X-GitHub-Delivery": "d", "X-Hub-Signature-256": "sha256=00"}
    hook = "203.0.113.10"  # the sender's own address: an attacker spends its budget from there
    spoofed = [(b"{}", {**bad, "X-Forwarded-For": f"10.0.0.{i}"}) for i in range(8)]
    assert [a.status_code for a in post_many(app, "/webhooks/github", spoofed, hook)] == [
        *[401] * 5,
        *[429] * 3,  # forwarded headers name no client here: the peer's budget is spent
    ]
    body = labeled()
    genuine = [(body, headers("github", body, event="issues"))]
    answer = post_many(app, "/webhooks/github", genuine, hook)[0]
    assert answer.status_code == 202 and answer.json()["status"] == "queued"
    # a signed delivery that fails later (outside the replay window) gets its own error
    slack = (HERE / "slack/slash-command.txt").read_bytes()
    forged = [(slack, headers("slack", slack, secret="wrong"))] * 6
    assert post_many(app, "/webhooks/slack", forged, hook)[-1].status_code == 429
    stale = [(slack, headers("slack", slack, at=time.time() - 3600))]
    answer = post_many(app, "/webhooks/slack", stale, hook)[0]
    assert answer.status_code == 401 and "replay window" in answer.json()["detail"]
    # another peer is not affected by the first one's budget
    assert post_many(app, "/webhooks/github", [(b"{}", bad)], "198.51.100.1")[0].status_code == 401
    dispatch.stop()
