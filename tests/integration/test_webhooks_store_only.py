"""Intake that only stores (`triggers.decide_at_intake = false`): the fast path answers
`queued` once the delivery is durable, and the worker that claims it decides it.

In-process app (httpx.ASGITransport) over the real store and Cedar; the worker pool and the
Celery task body are the production ones; runs go through the real loop (bubblewrap) where
a test drives one.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from codefactory.dispatch.celery_executor import drive_task
from codefactory.dispatch.service import Dispatch, build_decider, build_dispatch, build_execution
from codefactory.domain import RunState
from codefactory.factory import Factory, build_factory
from codefactory.store.deliveries import DONE, QUEUED, REFUSED, RUNNING
from codefactory.store.trigger_tables import DeliveryRow
from codefactory.web.app import create_app
from tests.fixtures.webhooks.signed import headers
from tests.integration.test_webhooks import labeled, post, sample_repo, settings_for


@pytest.fixture
def factory(tmp_path: Path) -> Factory:
    repo = sample_repo(tmp_path)
    return build_factory(settings_for(tmp_path, repo, decide_at_intake=False))


@pytest.fixture
def dispatch(factory: Factory) -> Dispatch:
    return build_dispatch(factory, workers=0)


@pytest.fixture
def app(factory: Factory, dispatch: Dispatch) -> Any:
    return create_app(factory, dispatch)


@pytest.fixture
def routed(dispatch: Dispatch) -> list[str]:
    """The sources of the deliveries the FastAPI route took (`WebhookIntake.receive`): what
    the fast path left to it."""
    sources: list[str] = []
    receive = dispatch.intake.receive

    def spy(source: str, *args: Any, **kwargs: Any) -> Any:
        sources.append(source)
        return receive(source, *args, **kwargs)

    dispatch.intake.receive = spy  # type: ignore[method-assign]
    return sources


def row(factory: Factory, delivery_id: str) -> DeliveryRow:
    with Session(factory.store.engine) as session:
        return session.scalars(
            select(DeliveryRow).where(DeliveryRow.delivery_id == delivery_id)
        ).one()


def audit_names(factory: Factory) -> list[str]:
    return [record.name for record in factory.audit.events()]


def unmapped() -> bytes:
    document = json.loads(labeled())
    document["repository"]["full_name"] = "someone/elsewhere"
    return json.dumps(document).encode()


@pytest.mark.usefixtures("bwrap_available")
def test_a_stored_delivery_is_answered_queued_then_decided_and_run_by_a_worker(
    app: Any, factory: Factory, dispatch: Dispatch
) -> None:
    body = labeled()
    answer = post(app, "/webhooks/github", body, headers("github", body, event="issues",
                                                          delivery_id="s-1"))  # fmt: skip
    assert answer.status_code == 202, answer.text
    assert answer.json() == {
        "source": "github", "delivery_id": "s-1", "status": "queued", "run_id": None,
        "state": None, "reason": "", "duplicate": False, "text": "queued: no run",
    }  # fmt: skip
    stored = row(factory, "s-1")
    assert (stored.status, stored.run_id) == (QUEUED, None) and stored.trigger is not None
    assert factory.store.search_runs() == [] and "webhook-accepted" not in audit_names(factory)
    assert dispatch.workers.drain() == 1
    decided = row(factory, "s-1")
    assert decided.status == DONE and decided.run_id is not None and decided.trigger is None
    run = factory.store.require_run(decided.run_id)
    assert run.state is RunState.IN_REVIEW, run.reason
    assert (run.sponsor, run.repository) == ("priya.shah", "Codertocat/Hello-World")
    assert [d["stage"] for d in factory.store.decisions(run.id)] == ["intake", "packaging"]
    trigger = factory.store.get_trigger(run.trigger_id)
    assert trigger is not None and (trigger.delivery_id, trigger.caused_by) == (
        "s-1",
        "user:priya.shah",
    )
    assert {"webhook-accepted", "trigger-received", "policy-decided"} <= set(audit_names(factory))
    assert factory.audit.verify().ok


def test_a_delivery_for_an_unmapped_repository_is_refused_by_the_worker(
    app: Any, factory: Factory, dispatch: Dispatch
) -> None:
    body = unmapped()
    sent = headers("github", body, event="issues", delivery_id="s-2")
    assert post(app, "/webhooks/github", body, sent).json()["status"] == "queued"
    assert dispatch.workers.drain() == 1
    refused = row(factory, "s-2")
    assert refused.status == REFUSED and "`someone/elsewhere` is not mapped" in refused.reason
    run = factory.store.require_run(refused.run_id or "")
    assert run.state is RunState.REFUSED and run.reason == refused.reason
    again = post(app, "/webhooks/github", body, sent).json()  # a repeat: the first's outcome
    assert (again["duplicate"], again["status"], again["run_id"]) == (True, REFUSED, run.id)


def test_repeats_are_answered_with_the_first_delivery_and_stored_once(
    app: Any, factory: Factory, dispatch: Dispatch
) -> None:
    body = labeled()
    first = post(app, "/webhooks/github", body, headers("github", body, event="issues",
                                                         delivery_id="s-3")).json()  # fmt: skip
    same_id = post(app, "/webhooks/github", body, headers("github", body, event="issues",
                                                           delivery_id="s-3")).json()  # fmt: skip
    same_body = post(app, "/webhooks/github", body, headers("github", body, event="issues",
                                                             delivery_id="s-4")).json()  # fmt: skip
    assert not first["duplicate"] and same_id["duplicate"] and same_body["duplicate"]
    assert same_id["delivery_id"] == same_body["delivery_id"] == "s-3"
    with Session(factory.store.engine) as session:
        assert session.scalars(select(DeliveryRow.delivery_id)).all() == ["s-3"]
    dispatch.stop()  # repeats are counted per minute: published at shutdown
    assert "webhook-duplicate" in audit_names(factory)


def test_refusals_still_go_through_the_route_and_are_counted(
    app: Any, factory: Factory, dispatch: Dispatch
) -> None:
    body = labeled()
    forged = post(app, "/webhooks/github", body,
                  headers("github", body, event="issues", secret="wrong"))  # fmt: skip
    assert forged.status_code == 401 and "does not match" in forged.json()["detail"]
    junk = b"{not json"
    malformed = post(app, "/webhooks/github", junk, headers("github", junk, event="issues"))
    assert malformed.status_code == 400 and "not valid JSON" in malformed.json()["detail"]
    elsewhere = {**headers("github", body, event="issues"), "Host": "evil.example"}
    wrong_host = post(app, "/webhooks/github", body, elsewhere)
    assert wrong_host.status_code == 400  # the trusted-host check stays in front
    dispatch.stop()
    rejected = [r.data for r in factory.audit.events() if r.name == "webhook-rejections"]
    assert sorted((r["status"], r["reason"]) for r in rejected) == [
        (400, "malformed"),
        (401, "signature"),
    ]
    with Session(factory.store.engine) as session:
        assert session.scalars(select(DeliveryRow)).all() == []


def test_the_celery_task_decides_the_delivery_it_claims(
    app: Any, factory: Factory, dispatch: Dispatch
) -> None:
    body = unmapped()
    post(app, "/webhooks/github", body, headers("github", body, event="issues", delivery_id="s-5"))
    row_id = row(factory, "s-5").id
    worker = build_factory(factory.settings)  # a worker process: its own factory
    execution = build_execution(worker, role="worker")
    decider = build_decider(worker)
    outcome = drive_task(dispatch.queue, execution.driver, row_id, decider=decider)
    assert outcome.startswith("refused: the repository `someone/elsewhere`"), outcome
    assert row(factory, "s-5").status == REFUSED
    # a second message for the same row (a redelivery) finds nothing waiting
    assert "nothing to do" in drive_task(dispatch.queue, execution.driver, row_id,
                                         decider=decider)  # fmt: skip
    assert len(factory.store.search_runs()) == 1


def test_two_deciders_of_one_delivery_make_one_run(
    app: Any, factory: Factory, dispatch: Dispatch
) -> None:
    body = labeled()
    post(app, "/webhooks/github", body, headers("github", body, event="issues", delivery_id="s-6"))
    claimed = dispatch.queue.claim()
    assert claimed is not None and claimed.status == RUNNING
    trigger = dispatch.queue.undecided(claimed.id)
    assert trigger is not None
    first = build_decider(factory).decide(claimed, trigger)
    second = build_decider(factory).decide(claimed, trigger)  # a takeover racing the first
    assert first.decided_here and not second.decided_here
    assert first.run is not None and second.run is not None and first.run.id == second.run.id
    assert first.run.state is RunState.AUTHORIZED
    assert len(factory.store.search_runs()) == 1
    assert dispatch.queue.undecided(claimed.id) is None


def test_the_fast_path_takes_what_it_only_stores_and_leaves_the_rest_to_the_route(
    app: Any, dispatch: Dispatch, routed: list[str]
) -> None:
    intake = dispatch.intake
    body = labeled()
    stored = post(app, "/webhooks/github", body, headers("github", body, event="issues"))
    assert stored.status_code == 202 and routed == []  # answered without the route
    forged = post(app, "/webhooks/github", body,
                  headers("github", body, event="issues", secret="wrong"))  # fmt: skip
    assert forged.status_code == 401 and routed == ["github"]  # refused by the route
    intake.settings = intake.settings.model_copy(update={"decide_at_intake": True})
    other = labeled("agent-ok")
    decided = post(app, "/webhooks/github", other, headers("github", other, event="issues"))
    assert decided.json()["run_id"] is not None and routed == ["github", "github"]


@pytest.mark.parametrize("decide", [False, True], ids=["stored-only", "decided"])
def test_a_repeated_header_the_source_reads_is_refused_in_both_modes(
    factory: Factory, dispatch: Dispatch, decide: bool
) -> None:
    dispatch.intake.settings = dispatch.intake.settings.model_copy(
        update={"decide_at_intake": decide}
    )
    app = create_app(factory, dispatch)
    body = labeled()
    signed = headers("github", body, event="issues", delivery_id="real-id")
    # a proxy in front reads the first copy, the signature covers another delivery
    sent = [("X-GitHub-Delivery", "what-a-proxy-sees"), *signed.items()]
    answer = post_raw(app, "/webhooks/github", body, sent)
    assert answer.status_code == 400 and "X-GitHub-Delivery".lower() in answer.json()["detail"]
    dispatch.stop()
    rejected = [r.data for r in factory.audit.events() if r.name == "webhook-rejections"]
    assert [(r["status"], r["reason"]) for r in rejected] == [(400, "repeated-header")]
    with Session(factory.store.engine) as session:
        assert session.scalars(select(DeliveryRow)).all() == []


def test_large_bodies_go_to_the_route_and_answers_are_the_routes_bytes(
    app: Any, routed: list[str]
) -> None:
    document = json.loads(labeled())
    document["issue"]["body"] = "x" * 70_000
    big = json.dumps(document).encode()
    answer = post(app, "/webhooks/github", big, headers("github", big, event="issues"))
    assert answer.status_code == 202 and routed == ["github"]  # parsed in a worker thread
    body = labeled()
    signed = headers("github", body, event="issues")
    signed["X-GitHub-Delivery"] = "lieferung-ö"  # UTF-8 bytes, read as Latin-1 by ASGI
    sent = [(k, v.encode()) for k, v in signed.items()]
    fast = post_raw(app, "/webhooks/github", body, sent)  # type: ignore[arg-type]
    assert routed == ["github"] and fast.json()["delivery_id"] == "lieferung-Ã¶", fast.text
    assert fast.content == JSONResponse(fast.json()).body  # as the route encodes it
    assert fast.headers["content-type"] == "application/json"


def post_raw(app: Any, path: str, body: bytes, sent: list[tuple[str, str]]) -> httpx.Response:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            return await client.post(path, content=body, headers=sent)

    return asyncio.run(call())


def test_an_undecided_delivery_a_stopped_worker_claimed_is_queued_again_and_decided(
    app: Any, factory: Factory, dispatch: Dispatch
) -> None:
    body = unmapped()
    post(app, "/webhooks/github", body, headers("github", body, event="issues", delivery_id="s-7"))
    claimed = dispatch.queue.claim()  # a worker took it, then died before deciding it
    assert claimed is not None and claimed.run_id is None and claimed.status == RUNNING
    sweeper = dispatch.execution.sweeper
    assert sweeper.requeue() == 0  # not stale yet: a live worker may be deciding it
    sweeper.requeue_after_s = 0.0
    assert sweeper.requeue() == 1
    assert row(factory, "s-7").status == QUEUED
    assert dispatch.workers.drain() == 1  # decided now: refused, with one run
    assert row(factory, "s-7").status == REFUSED and len(factory.store.search_runs()) == 1
    assert sweeper.requeue() == 0  # decided: nothing left to queue
