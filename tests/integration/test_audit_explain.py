"""`audit explain` for runs that never got far, and for packages and logs that were tampered."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy import text

from codefactory.audit.explain import _commit, _proof, _provenance, explain_run, render_explanation
from codefactory.audit.publishing import checkpoint_when_resting
from codefactory.audit.sql import SqlAuditLog
from codefactory.config import Settings
from codefactory.domain import RunState, UnknownEvent
from codefactory.factory import Factory, build_factory, commit_verifier
from codefactory.runs.tickets import accept_ticket
from tests.acceptance.conftest import TEMPLATE


def factory_at(tmp_path: Path) -> Factory:
    return build_factory(Settings(data_dir=tmp_path / "data"))


def test_a_refused_run_is_explained_without_token_commit_or_package(tmp_path: Path) -> None:
    factory = factory_at(tmp_path)
    ticket = (TEMPLATE / "tickets" / "SVC-103.json").read_bytes()
    run = accept_ticket(factory, payload=ticket, repo=tmp_path)
    assert run.state is RunState.REFUSED
    explanation = explain_run(factory, run.id, commits=commit_verifier(factory.settings))
    assert explanation is not None
    assert explanation["delegation"] is None and explanation["commit"] is None
    assert explanation["provenance"] is None and explanation["approvals"] == []
    assert explanation["decisions"][0]["allowed"] is False
    assert all(proof["verified"] for proof in explanation["proofs"])
    console = Console(record=True, width=200)
    render_explanation(console, explanation)
    output = console.export_text()
    assert "decision:   intake modify_ci denied (no-autonomous-ci-changes)" in output
    assert "delegation:" not in output and "commit:" not in output
    assert explain_run(factory, "r-nope", commits=commit_verifier(factory.settings)) is None


def test_explaining_a_run_of_an_unknown_agent(tmp_path: Path) -> None:
    factory = factory_at(tmp_path)
    ticket = (TEMPLATE / "tickets" / "SVC-103.json").read_bytes()
    run = accept_ticket(factory, payload=ticket, repo=tmp_path)
    with factory.store.engine.begin() as connection:
        connection.execute(text("DELETE FROM agents"))
    explanation = explain_run(factory, run.id, commits=commit_verifier(factory.settings))
    assert explanation is not None
    assert explanation["agent"] == {"id": run.agent_id, "status": "unknown"}
    render_explanation(Console(record=True, width=200), explanation)


def test_a_missing_forge_or_a_tampered_provenance_is_named(tmp_path: Path) -> None:
    factory = factory_at(tmp_path)
    agent = factory.identity.agents.require_active(factory.settings.agent_id)
    missing = _commit(
        commit_verifier(factory.settings),
        factory.identity,
        "acme/nowhere",
        {"commit": "a" * 40, "branch": "b"},
    )
    assert missing is not None
    assert missing["signature"] == {
        "status": "E",
        "describe": "no forge repository for acme/nowhere",
    }
    package = tmp_path / "package"
    package.mkdir()
    unreadable = _provenance({"directory": str(package)}, agent.ssh_public_key)
    assert unreadable is not None and unreadable["problem"].startswith("unreadable: ")
    message = b"payload"
    _, signature = factory.identity.agent_keys.sign(agent.id, message)
    envelope = {
        "payloadType": "application/vnd.in-toto+json",
        "payload": base64.b64encode(message).decode(),
        "signatures": [{"keyid": "k", "sig": base64.b64encode(signature).decode()}],
    }
    (package / "provenance.dsse.json").write_text(json.dumps(envelope))
    forged = _provenance({"directory": str(package)}, agent.ssh_public_key)
    assert forged == {
        "path": str(package / "provenance.dsse.json"),
        "verified": False,
        "problem": "signature does not verify",
    }


def test_a_proof_that_cannot_be_made_is_reported_not_raised(tmp_path: Path) -> None:
    factory = factory_at(tmp_path)
    for i in range(300):
        factory.audit.append(
            UnknownEvent(kind="step", actor="a", payload={"i": i}, at=datetime.now(UTC))
        )
    signed = factory.audit.checkpoint()
    record = factory.audit.events()[5]
    assert _proof(factory.audit, record, signed)["verified"] is True
    with factory.store.engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_subtrees"))
    failed = _proof(factory.audit, record, signed)
    assert failed["verified"] is False and "no cached subtree" in failed["problem"]


def test_checkpoints_are_signed_when_runs_rest_and_failures_never_escape(tmp_path: Path) -> None:
    factory = factory_at(tmp_path)
    seen: list[tuple[str, RunState]] = []
    observe = checkpoint_when_resting(factory.audit, lambda r, s, _: seen.append((r, s)))
    factory.audit.append(UnknownEvent(kind="step", actor="a", at=datetime.now(UTC)))
    observe("r-1", RunState.PROPOSING, "")
    assert (
        factory.store.engine.connect()
        .execute(text("SELECT count(*) FROM audit_checkpoints"))
        .scalar()
        == 0
    )
    observe("r-1", RunState.IN_REVIEW, "")
    observe("r-1", RunState.FAILED, "")
    assert seen == [
        ("r-1", RunState.PROPOSING),
        ("r-1", RunState.IN_REVIEW),
        ("r-1", RunState.FAILED),
    ]
    unsigned = checkpoint_when_resting(SqlAuditLog(factory.store.engine), None)
    unsigned("r-1", RunState.HANDED_OFF, "")  # no key: nothing signed, nothing raised


def test_the_text_form_shows_rejections_and_runs_without_a_trigger(tmp_path: Path) -> None:
    factory = factory_at(tmp_path)
    ticket = (TEMPLATE / "tickets" / "SVC-103.json").read_bytes()
    explanation = explain_run(
        factory,
        accept_ticket(factory, payload=ticket, repo=tmp_path).id,
        commits=commit_verifier(factory.settings),
    )
    assert explanation is not None
    explanation["trigger"] = None
    explanation["approvals"] = [
        {"approved": False, "reviewer": "jordan.lee", "at": "2026-01-01", "commit": "c" * 40}
    ]
    console = Console(record=True, width=200)
    render_explanation(console, explanation)
    output = console.export_text()
    assert "rejected by jordan.lee" in output and "trigger:" not in output


def test_runs_show_and_explain_tell_the_regulated_track(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run taken the whole regulated way by the factory's own parts against the GitHub and
    ServiceNow stand-ins: its request opened under the sponsor's grant, a forge approval by
    webhook, the change request and the CAB's approval (a business rule's notice), signed QA
    and UAT sign-offs, the approved merge and an unapproved one. `runs show` and `audit
    explain` say each, the explanation proving every item in the signed log."""
    import tests.integration.signed_people as signed_people
    from codefactory.context.credentials import vendor_client
    from codefactory.dispatch.service import build_dispatch
    from codefactory.factory import forge_publishing
    from codefactory.identity.ssh_signatures import sign
    from codefactory.identity.statements import SIGN_OFF_NAMESPACE
    from codefactory.review.change_requests import ChangeFiling
    from codefactory.review.forges.settings import ForgeSettings
    from codefactory.review.settings import ChangeSettings, ReviewTrackSettings
    from codefactory.runs.report import render_report, run_report
    from codefactory.triggers.settings import RepositoryBinding, TriggerSettings
    from codefactory.web.app import create_app
    from tests.context_helpers import vendor_settings
    from tests.context_standins.vendors import ServiceNowStandin
    from tests.directory_helpers import os_account, person, write_directory
    from tests.fixtures.webhooks.signed import SECRETS, headers
    from tests.forge_standins.git_http import GitHttpStandin
    from tests.forge_standins.github import GitHubStandin
    from tests.integration.signed_people import factory_for, make_key, run_in_review
    from tests.integration.test_change_approval_webhook import notice
    from tests.integration.test_change_approval_webhook import post as post_notice
    from tests.integration.test_forge_github import APP_TOKEN, USER_TOKEN, push_header
    from tests.integration.test_forge_reconcile import GITHUB_REPO, merged, review
    from tests.integration.test_webhooks import post

    folder = tmp_path / "people"
    keys = {name: make_key(folder / "keys", name) for name in ("quinn", "uma")}
    directory = write_directory(
        folder / "directory.toml",
        {
            "priya.shah": person("Priya Shah", roles=["sponsor"], unix=os_account(),
                                 github="Codertocat"),
            "jordan.lee": person("Jordan Lee", roles=["reviewer"], github="jordan-gh"),
            "mona": person("Mona", roles=["reviewer"], github="mona-gh"),
            "quinn": person("Quinn", roles=["qa"], ssh_keys=[keys["quinn"].public]),
            "uma": person("Uma", roles=["uat"], ssh_keys=[keys["uma"].public]),
        },
    )  # fmt: skip
    git_host = GitHttpStandin(tmp_path / "github-git", authorization=push_header())
    api = GitHubStandin(git=git_host, app_token=APP_TOKEN, user_tokens={USER_TOKEN: "Codertocat"})
    servicenow = ServiceNowStandin()
    servicenow.start()
    try:
        app_token = tmp_path / "github-app-token"
        app_token.write_text(APP_TOKEN + "\n")
        factory = factory_for(
            tmp_path,
            directory,
            triggers=TriggerSettings(
                secrets=dict(SECRETS),  # type: ignore[arg-type]
                repositories={GITHUB_REPO: RepositoryBinding(path=tmp_path)},
            ),
            forge=ForgeSettings(type="github", base_url=api.url, git_url=git_host.url,
                                token_file=app_token, user_tokens={"priya.shah": USER_TOKEN}),
            servicenow=vendor_settings(tmp_path / "secrets", servicenow=servicenow)["servicenow"],
            changes=ChangeSettings(file_in_servicenow=True),
            review=ReviewTrackSettings(sign_offs=["qa", "uat"]),
        )  # fmt: skip
        app = create_app(factory, build_dispatch(factory, workers=0))
        monkeypatch.setattr(signed_people, "REPOSITORY", GITHUB_REPO)
        run_id = run_in_review(factory, tmp_path, engine="agent:pydantic-ai")  # a normal change
        run = factory.store.require_run(run_id)
        git_host.create(GITHUB_REPO, seed=tmp_path / f"work-{run_id}")
        publish = forge_publishing(
            factory.settings, factory.store, factory.loop.forge.repository_path
        )
        assert publish is not None
        publish(run, Path(run.package_dir))  # the loop's hook after packaging, as wired
        ChangeFiling(settings=factory.settings.changes, record=factory.store.append,
                     client=lambda: vendor_client("servicenow", factory.settings.servicenow),
                     )(run, Path(run.package_dir))  # fmt: skip
        head = run.head_commit

        def webhook(body: bytes, event: str) -> None:
            answer = post(app, "/webhooks/github", body, headers("github", body, event=event))
            assert answer.status_code == 202, answer.text

        (pull,) = api.pulls  # the draft the factory opened: the forge holds the review
        review_id = api.review(pull.number, "jordan-gh")
        webhook(review(run_id, head, "jordan-gh", review_id=review_id, number=pull.number),
                "pull_request_review")  # fmt: skip
        assert factory.store.require_run(run_id).state is RunState.APPROVED
        [change] = [e.data for e in factory.audit.events(run_id)
                    if e.name == "change-request-filed"]  # fmt: skip
        servicenow.approvals[str(change["sys_id"])] = "approved"
        change_ids = {"number": str(change["number"]), "sys_id": str(change["sys_id"])}
        answer = post_notice(app, notice(change_ids, "approved", 3), token=SECRETS["servicenow"])
        assert answer.status_code == 202 and answer.json()["state"] == "in_qa", answer.text

        for who, stage, reason in (("quinn", "qa", "regression suite green"), ("uma", "uat", "")):
            body = factory.review.sign_off_statement(run_id, stage=stage, signer=who, accept=True,
                                                     reason=reason)  # fmt: skip
            signature = sign(body, keys[who].private, SIGN_OFF_NAMESPACE)
            factory.review.sign_off(run_id, stage=stage, statement=body, signer=who, accept=True,
                                    signature=signature)  # fmt: skip
        assert factory.store.require_run(run_id).state is RunState.ACCEPTED
        webhook(merged(run_id, head, number=pull.number), "pull_request")
        webhook(
            merged(run_id, "c4295bd74fb0f4fda03689c3df3f2803b658fd85", "dana-gh",
                   number=pull.number),
            "pull_request",
        )  # fmt: skip
    finally:
        servicenow.stop()
        api.stop()
        git_host.stop()

    report = run_report(factory.store, run_id)
    assert report is not None
    track = report["regulated_track"]
    [opened] = track["forge_requests"]
    assert (opened["forge"], opened["number"], opened["opened_for"]) == (
        "github",
        "1",
        "priya.shah",
    )
    assert opened["url"].endswith(f"/{GITHUB_REPO}/pull/1")
    [approval] = track["forge_approvals"]
    assert approval["actor"] == "user:jordan.lee" and approval["review_id"] == "3000"
    assert [c["number"] for c in track["change_requests"]] == [change["number"]]
    assert [c["decision"] for c in track["cab"]][-2:] == ["notice", "approved"]
    qa, uat = track["sign_offs"]
    assert (qa["stage"], qa["verdict"], qa["actor"]) == ("qa", "accept", "user:quinn")
    assert qa["reason"] == "regression suite green" and qa["statement_digest"].startswith("sha256:")
    assert (uat["stage"], uat["actor"]) == ("uat", "user:uma")
    assert [m["outcome"] for m in track["merges"]] == ["recorded", "unapproved"]

    console = Console(record=True, width=240)
    render_report(console, report)
    shown = console.export_text()
    assert f"forge:      github request #1 {opened['url']} on {GITHUB_REPO}, opened under " \
           "priya.shah's grant (author Codertocat)" in shown  # fmt: skip
    assert "forge review: approved by user:jordan.lee on github #" in shown
    assert f"change:     {change['number']} filed in ServiceNow" in shown
    assert f"cab:        {change['number']}: APPROVED by the CAB" in shown
    assert "sign-off:   QA accept by user:quinn: regression suite green, statement sha256:" in shown
    assert "sign-off:   UAT accept by user:uma, statement sha256:" in shown
    assert "merge:      recorded on github #" in shown
    assert "merge:      UNAPPROVED MERGE on github #" in shown and "dana-gh" in shown

    explanation = explain_run(factory, run_id, commits=commit_verifier(factory.settings))
    assert explanation is not None
    explained_track = explanation["regulated_track"]
    assert [i["verified"] for i in explained_track["sign_offs"]] == [True, True]
    assert {k: v for k, v in explained_track.items() if k != "sign_offs"} == {
        k: v for k, v in track.items() if k != "sign_offs"
    }
    console = Console(record=True, width=240)
    render_explanation(console, explanation)
    explained = console.export_text()
    assert f"sign-off:   QA accept by user:quinn: regression suite green, statement " \
           f"{qa['statement_digest']}" in explained  # fmt: skip
    assert f"[event {uat['index']}]" in explained
    [forge_review] = explanation["approvals"]  # the forge's approval is no signed verdict
    assert forge_review["forge"] == {"forge": "github", "request": approval["request"],
                                     "review_id": "3000"}  # fmt: skip
    assert "(review 3000): no signed statement" in explained
    assert "merge:      UNAPPROVED MERGE" in explained and "NOT PROVED" not in explained
    assert "regression suite green, statement" in explained and ", verified [event" in explained

    # a kept sign-off statement altered afterwards no longer verifies
    kept = Path(factory.store.require_run(run_id).package_dir) / qa["statement"]
    kept.write_bytes(kept.read_bytes().replace(b"regression suite green", b"regression suite gren"))
    again = explain_run(factory, run_id, commits=commit_verifier(factory.settings))
    assert again is not None
    [altered, _] = again["regulated_track"]["sign_offs"]
    assert altered["verified"] is False and altered["problem"]
    console = Console(record=True, width=240)
    render_explanation(console, again)
    altered_text = console.export_text()
    assert "QA accept by user:quinn: regression suite green" in altered_text
    assert ", NOT VERIFIED: " in altered_text
