"""The webhook endpoints in-process (httpx.ASGITransport) over a real SQLite store and Cedar.

Deliveries are the recorded ones, signed as each sender signs; runs are decided at intake and
executed by the real worker pool where a test needs it (bubblewrap).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from codefactory.config import Settings
from codefactory.dispatch.service import Dispatch, build_dispatch
from codefactory.domain import RunState
from codefactory.factory import Factory, build_factory
from codefactory.store.deliveries import QUEUED, RUNNING
from codefactory.store.trigger_tables import DeliveryRow
from codefactory.triggers.settings import RepositoryBinding, ScheduleSettings, TriggerSettings
from codefactory.web.app import create_app
from tests.conftest import SHARED_FIXTURES, sample_service
from tests.fixtures.webhooks.signed import HERE, SECRETS, WORK, headers, restamp

GITHUB = SHARED_FIXTURES / "webhooks" / "github"


def post(app: Any, path: str, body: bytes, sent: dict[str, str]) -> httpx.Response:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            return await client.post(path, content=body, headers=sent)

    return asyncio.run(call())


def sample_repo(root: Path) -> Path:
    # no known advisory in the pins: only the change is judged
    return sample_service(root / "sample-service", **{"requirements.txt": "idna==3.7\n"})


def settings_for(tmp_path: Path, repo: Path, **extra: Any) -> Settings:
    names = ["Codertocat/Hello-World", "gitlabhq/gitlab-test", "gitlab-org/gitlab-test", "SVC",
             "sample-service", "front-end", "wolfy1339/pika-pack"]  # fmt: skip
    triggers = TriggerSettings(
        secrets={k: v for k, v in SECRETS.items()},  # type: ignore[misc]
        repositories={n: RepositoryBinding(path=repo, sponsor="priya.shah") for n in names},
        **extra,
    )
    data_dir = tmp_path / "data"
    return Settings(data_dir=data_dir, triggers=triggers)


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


def labeled(label: str = "lint") -> bytes:
    path = GITHUB / "issues" / "labeled.payload.json"
    if not path.is_file():
        pytest.skip(f"shared fixture data missing: {path}")
    document = json.loads(path.read_bytes())
    document["label"]["name"] = label
    return json.dumps(document).encode()


def audit_names(factory: Factory) -> list[str]:
    return [record.name for record in factory.audit.events()]


def test_a_signed_github_delivery_is_stored_decided_and_queued(app: Any, factory: Factory) -> None:
    body = labeled()
    answer = post(
        app, "/webhooks/github", body, headers("github", body, event="issues", delivery_id="g-1")
    )
    assert answer.status_code == 202, answer.text
    receipt = answer.json()
    assert (receipt["status"], receipt["state"], receipt["delivery_id"]) == (
        "queued",
        "authorized",
        "g-1",
    )
    run = factory.store.require_run(receipt["run_id"])
    # the run names the repository by the sender's `owner/name`, reads the mapped checkout;
    # the sponsor is the directory person of the signed `sender.login` (tests/directory_helpers)
    assert run.sponsor == "priya.shah" and run.repository == "Codertocat/Hello-World"
    assert run.repository_path.endswith("sample-service")
    trigger = factory.store.get_trigger(run.trigger_id)
    assert (
        trigger is not None and trigger.delivery_id == "g-1" and trigger.event == "issues.labeled"
    )
    assert trigger.links and trigger.attributes["remote_repository"] == "Codertocat/Hello-World"
    assert (trigger.sender_kind, trigger.sender, trigger.caused_by) == (
        "github",
        "Codertocat",
        "user:priya.shah",
    )
    assert {"webhook-accepted", "trigger-received", "run-created", "policy-decided"} <= set(
        audit_names(factory)
    )
    assert factory.audit.verify().ok


def test_the_same_delivery_twice_yields_one_run(
    app: Any, factory: Factory, dispatch: Dispatch
) -> None:
    body = labeled()
    sent = headers("github", body, event="issues", delivery_id="g-dup")
    first = post(app, "/webhooks/github", body, sent).json()
    second = post(app, "/webhooks/github", body, sent).json()
    assert second["run_id"] == first["run_id"] and second["duplicate"] is True
    assert len(factory.store.search_runs()) == 1
    dispatch.stop()  # repeats are counted per minute: published when it ends, or at shutdown
    assert "webhook-duplicate" in audit_names(factory)


def test_bad_signatures_malformed_bodies_and_oversize_are_refused_and_audited(
    app: Any,
    factory: Factory,
    dispatch: Dispatch,
    tmp_path: Path,
    repo: Path,
    another_store: Callable[[], None],
) -> None:
    body = labeled()
    forged = post(
        app, "/webhooks/github", body, headers("github", body, event="issues", secret="x")
    )
    assert forged.status_code == 401 and "does not match" in forged.json()["detail"]
    junk = b"{not json"
    malformed = post(app, "/webhooks/github", junk, headers("github", junk, event="issues"))
    assert malformed.status_code == 400 and "not valid JSON" in malformed.json()["detail"]
    another_store()  # the small factory's audit log apart from the first one's
    small = build_factory(settings_for(tmp_path / "small", repo, max_body_bytes=100))
    small_dispatch = build_dispatch(small, workers=0)
    big = post(
        create_app(small, small_dispatch),
        "/webhooks/github",
        body,
        headers("github", body, event="issues"),
    )
    assert big.status_code == 413 and "limit" in big.json()["detail"]
    dispatch.stop()  # rejections are counted, then audited per source, reason and minute
    small_dispatch.stop()
    rejected = [r.data for r in factory.audit.events() if r.name == "webhook-rejections"]
    assert sorted((r["status"], r["reason"], r["count"]) for r in rejected) == [
        (400, "malformed", 1),
        (401, "signature", 1),
    ]
    assert factory.store.search_runs() == []
    assert [
        (r.data["status"], r.data["reason"])
        for r in small.audit.events()
        if r.name == "webhook-rejections"
    ] == [(413, "oversized")]


def test_a_source_without_a_secret_answers_401(tmp_path: Path, repo: Path) -> None:
    factory = build_factory(Settings(data_dir=tmp_path / "nosecret"))
    body = labeled()
    answer = post(
        create_app(factory), "/webhooks/github", body, headers("github", body, event="issues")
    )
    assert answer.status_code == 401 and "no webhook secret" in answer.json()["detail"]


def test_replays_outside_the_window_are_refused(app: Any, factory: Factory) -> None:
    body = (HERE / "slack/slash-command.txt").read_bytes()
    stale = post(app, "/webhooks/slack", body, headers("slack", body, at=time.time() - 3600))
    assert stale.status_code == 401 and "replay window" in stale.json()["detail"]
    old = restamp(
        "jira", (HERE / "jira/issue-updated.ready.json").read_bytes(), at=time.time() - 900
    )
    assert post(app, "/webhooks/jira", old, headers("jira", old)).status_code == 401
    fresh = post(app, "/webhooks/slack", body, headers("slack", body))
    assert fresh.status_code == 200 and fresh.json()["status"] == "queued"


def test_unknown_events_are_ignored_and_recorded(app: Any, factory: Factory) -> None:
    path = GITHUB / "push" / "payload.json"
    body = path.read_bytes()
    answer = post(
        app, "/webhooks/github", body, headers("github", body, event="push", delivery_id="p-1")
    )
    assert answer.status_code == 202
    assert answer.json()["status"] == "ignored" and answer.json()["run_id"] is None
    with Session(factory.store.engine) as session:
        row = session.scalars(select(DeliveryRow).where(DeliveryRow.delivery_id == "p-1")).one()
    assert row.status == "ignored" and "push" in row.reason
    assert "webhook-ignored" in audit_names(factory)


def test_an_unknown_repository_is_refused_with_the_reason(app: Any, factory: Factory) -> None:
    document = json.loads(labeled())
    document["repository"]["full_name"] = "someone/elsewhere"
    body = json.dumps(document).encode()
    receipt = post(app, "/webhooks/github", body, headers("github", body, event="issues")).json()
    assert receipt["status"] == "refused" and receipt["state"] == "refused"
    assert "`someone/elsewhere` is not mapped" in receipt["reason"]


@pytest.mark.parametrize(("source", "name", "event"), WORK, ids=[w[1] for w in WORK])
def test_every_source_reaches_a_decided_run(
    app: Any, factory: Factory, source: str, name: str, event: str
) -> None:
    body = restamp(source, (HERE / name).read_bytes())
    answer = post(app, f"/webhooks/{source}", body, headers(source, body, event=event))
    assert answer.status_code in (200, 202), answer.text
    receipt = answer.json()
    run = factory.store.require_run(receipt["run_id"])
    assert run.state in (RunState.AUTHORIZED, RunState.REFUSED)
    assert receipt["status"] == ("queued" if run.state is RunState.AUTHORIZED else "refused")
    if run.state is RunState.REFUSED:
        assert run.reason  # general changes from alerts: default deny, said so


def test_a_dependabot_alert_is_sponsored_by_the_repository_owner(
    app: Any, factory: Factory
) -> None:
    body = (GITHUB / "dependabot_alert" / "created.payload.json").read_bytes()
    receipt = post(
        app, "/webhooks/github", body, headers("github", body, event="dependabot_alert")
    ).json()
    run = factory.store.require_run(receipt["run_id"])
    assert run.sponsor == "priya.shah" and run.state is RunState.AUTHORIZED


def test_schedules_fire_once_per_time_through_intake(
    factory: Factory, tmp_path: Path, repo: Path
) -> None:
    from datetime import UTC, datetime

    from codefactory.dispatch.scheduler import Scheduler

    schedule = ScheduleSettings(
        name="weekly-lint",
        cron="0 6 * * 1",
        repository="sample-service",
        kind="fix_lint",
        title="Weekly lint sweep",
    )
    dispatch = build_dispatch(factory, workers=0)
    scheduler = Scheduler(
        intake=dispatch.intake,
        schedules=[schedule],
        clock=lambda: datetime(2026, 11, 22, tzinfo=UTC),
    )
    receipts = scheduler.tick(datetime(2026, 12, 7, 7, 0, tzinfo=UTC))
    assert [r.delivery_id for r in receipts] == [
        "weekly-lint@2026-11-23T06:00Z",
        "weekly-lint@2026-11-30T06:00Z",
        "weekly-lint@2026-12-07T06:00Z",
    ]
    assert {r.status for r in receipts} == {"queued"}
    run = factory.store.require_run(receipts[0].run_id or "")
    assert run.sponsor == "priya.shah"
    again = Scheduler(
        intake=dispatch.intake,
        schedules=[schedule],
        clock=lambda: datetime(2026, 12, 6, tzinfo=UTC),
    )
    assert [r.duplicate for r in again.tick(datetime(2026, 12, 7, 7, 0, tzinfo=UTC))] == [True]


def test_a_delivery_a_stopped_process_claimed_is_queued_again(app: Any, factory: Factory) -> None:
    body = labeled()
    receipt = post(app, "/webhooks/github", body, headers("github", body, event="issues")).json()
    dispatch = build_dispatch(factory, workers=0)
    claimed = dispatch.queue.claim()  # a worker took it, then the process died before leasing
    assert claimed is not None and claimed.run_id == receipt["run_id"]
    assert dispatch.queue.counts() == {RUNNING: 1}
    sweeper = build_dispatch(factory, workers=0).execution.sweeper
    assert sweeper.requeue() == 0  # not stale yet: a live worker may be leasing it
    sweeper.requeue_after_s = 0.0
    assert sweeper.requeue() == 1
    assert dispatch.queue.counts() == {QUEUED: 1}


@pytest.mark.usefixtures("bwrap_available")
def test_a_webhook_run_goes_through_the_real_loop_on_a_worker(
    app: Any, factory: Factory, dispatch: Dispatch
) -> None:
    body = labeled()
    receipt = post(app, "/webhooks/github", body, headers("github", body, event="issues")).json()
    assert dispatch.workers.drain() == 1
    run = factory.store.require_run(receipt["run_id"])
    assert run.state is RunState.IN_REVIEW, run.reason
    assert [d["stage"] for d in factory.store.decisions(run.id)] == ["intake", "packaging"]
    assert dispatch.queue.counts() == {"done": 1}


@pytest.mark.usefixtures("bwrap_available")
def test_a_sentry_issue_is_taken_by_the_in_harness_agent_on_a_worker(
    tmp_path: Path, repo: Path
) -> None:
    script = tmp_path / "sentry-fix.json"
    script.write_text(
        json.dumps(
            {
                "engine": "agent:pydantic-ai",
                "model": "gpt-4.1-mini",
                "steps": [
                    {
                        "tool": {
                            "name": "search",
                            "arguments": {"pattern": "def ", "path": "service"},
                        }
                    },
                    {
                        "tool": {
                            "name": "edit_file",
                            "arguments": {
                                "path": "README.md",
                                "old": "# sample-service",
                                "new": "# sample-service\n\nCallbacks: see service/callbacks.py.",
                            },
                        }
                    },
                    {"tool": {"name": "finish", "arguments": {"summary": "documented"}}},
                    {"text": "done"},
                ],
            }
        )
    )
    settings = settings_for(tmp_path, repo)
    settings = settings.model_copy(
        update={"gateway": settings.gateway.model_copy(update={"upstream": f"replay:{script}"})}
    )
    factory = build_factory(settings)
    dispatch = build_dispatch(factory, workers=0)
    app = create_app(factory, dispatch)
    body = restamp("sentry", (HERE / "sentry" / "issue.created.json").read_bytes())
    receipt = post(app, "/webhooks/sentry", body, headers("sentry", body, event="issue")).json()
    assert receipt["status"] == "queued", receipt
    assert dispatch.workers.drain() == 1
    run = factory.store.require_run(receipt["run_id"])
    assert run.state is RunState.IN_REVIEW, run.reason
    assert run.engine == "agent:pydantic-ai" and run.sponsor == "priya.shah"
    conversation = (
        factory.settings.data_dir
        / "evidence"
        / run.id
        / "round-1"
        / "engine"
        / "agent-messages-round-1.json"
    ).read_text()
    assert "blooopy is not defined" in conversation  # the alert reached the engine's prompt
    assert [d["stage"] for d in factory.store.decisions(run.id)] == ["intake", "packaging"]


def test_a_form_encoded_github_delivery_is_read_from_its_payload_field(
    app: Any, factory: Factory
) -> None:
    """Issue 10: a hook whose content type is `application/x-www-form-urlencoded` sends
    `payload=<json>`, signed over the raw form body."""
    from urllib.parse import urlencode

    form = urlencode({"payload": labeled().decode()}).encode()
    sent = headers("github", form, event="issues")
    sent["Content-Type"] = "application/x-www-form-urlencoded"
    answer = post(app, "/webhooks/github", form, sent)
    assert answer.status_code == 202, answer.text
    run = factory.store.require_run(answer.json()["run_id"])
    assert run.state is RunState.AUTHORIZED and run.kind.value == "fix_lint"

    for bad in (b"payload=%7B&payload=%7B%7D", b"other=1", b"payload=not-json", b"%zz"):
        sent = headers("github", bad, event="issues")
        sent["Content-Type"] = "application/x-www-form-urlencoded"
        refused = post(app, "/webhooks/github", bad, sent)
        assert refused.status_code == 400, (bad, refused.text)
