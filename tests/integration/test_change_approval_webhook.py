"""`POST /webhooks/servicenow-change` in the real app (httpx.ASGITransport, real SQLite and the
factory's own wiring): a business rule's notice that a change request's `approval` changed
moves the run only as far as ServiceNow's Table API (a local stand-in) says, through the
webhook intake's protections (size cap, the ServiceNow source's secret, the rejection budget
per client, duplicates answered once)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import insert
from sqlalchemy.orm import Session

from codefactory.dispatch.service import Dispatch, build_dispatch
from codefactory.domain import RunState
from codefactory.factory import Factory
from codefactory.store.models import RunRow
from codefactory.triggers.settings import TriggerSettings
from codefactory.web.app import create_app
from tests.context_standins.vendors import RecordedRequest, ServiceNowStandin
from tests.integration.signed_people import Key
from tests.integration.test_change_approval import (
    approve,
    approved_filed_run,
    cab_factory,
    change_of,
    filed_run,
    running_servicenow,
)

SECRET = "sn-business-rule-secret"
PATH = "/webhooks/servicenow-change"
BUDGET = 3


@pytest.fixture(scope="module")
def servicenow() -> Iterator[ServiceNowStandin]:
    yield from running_servicenow()


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, servicenow: ServiceNowStandin
) -> tuple[Factory, Dispatch, Any, dict[str, Key], Path]:
    tmp_path = tmp_path_factory.mktemp("change-approval-webhook")
    factory, keys = cab_factory(
        tmp_path,
        servicenow,
        triggers=TriggerSettings(
            secrets={"servicenow": SECRET},  # type: ignore[dict-item]
            rejections_per_minute=BUDGET,
        ),
    )
    dispatch = build_dispatch(factory, workers=0)
    return factory, dispatch, create_app(factory, dispatch), keys, tmp_path


def post(
    app: Any, body: bytes, *, token: str | None = SECRET, client: str = "10.0.0.1"
) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if token is not None:
        headers["x-codefactory-token"] = token

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=(client, 41000))
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
            return await http.post(PATH, content=body, headers=headers)

    return asyncio.run(call())


def notice(change: dict[str, str], approval: str, count: int, **extra: Any) -> bytes:
    """The body the documented business rule sends (docs/review.md)."""
    return json.dumps(
        {
            **change,
            "approval": approval,
            "sys_mod_count": str(count),
            "sent_at": str(int(time.time() * 1000)),
            **extra,
        }  # fmt: skip
    ).encode()


def events(factory: Factory, name: str, run_id: str | None = None) -> list[dict[str, Any]]:
    return [e.data for e in factory.audit.events(run_id) if e.name == name]


def waiting_run(world: tuple[Factory, Dispatch, Any, dict[str, Key], Path]) -> tuple[str, dict]:
    factory, _, _, keys, tmp_path = world
    return approved_filed_run(factory, tmp_path, keys)


def test_the_notice_moves_the_run_only_when_servicenow_says_approved(
    world: tuple[Factory, Dispatch, Any, dict[str, Key], Path], servicenow: ServiceNowStandin
) -> None:
    factory, _, app, _, _ = world
    run_id, change = waiting_run(world)

    # the notice says approved; the Table API says requested: the run stays approved
    servicenow.approvals[change["sys_id"]] = "requested"
    first = post(app, notice(change, "approved", 4))
    assert first.status_code == 202, first.text
    answer = first.json()
    assert answer["source"] == "servicenow-change" and answer["status"] == "done"
    assert answer["run_id"] == run_id and answer["state"] == "approved"
    assert f"waits for CAB approval of {change['number']}" in answer["reason"]
    assert answer["delivery_id"] == f"{change['sys_id']}:4"
    assert factory.store.require_run(run_id).state is RunState.APPROVED
    reads = [r for r in servicenow.requests if r.path.endswith(change["sys_id"])]
    assert reads and reads[-1].method == "GET"

    # the same notice again while the run still waits: ServiceNow is asked again (the
    # notice only prompts), answered as a repeat of the first with what it says now
    delivered = len(events(factory, "cab-approval-delivered", run_id))
    reads_before = len(servicenow.requests)
    again = post(app, notice(change, "approved", 4))
    assert again.status_code == 202 and again.json()["duplicate"] is True
    assert again.json()["delivery_id"] == answer["delivery_id"]
    assert again.json()["state"] == "approved"
    assert len(events(factory, "cab-approval-delivered", run_id)) == delivered + 1
    assert len(servicenow.requests) > reads_before

    # ServiceNow approves: the next update's notice hands the run to QA
    servicenow.approvals[change["sys_id"]] = "approved"
    moved = post(app, notice(change, "approved", 5))
    assert moved.status_code == 202, moved.text
    assert moved.json()["state"] == "in_qa" and moved.json()["run_id"] == run_id
    assert factory.store.require_run(run_id).state is RunState.IN_QA
    [said, *_] = events(factory, "cab-approval-delivered", run_id)
    assert said["said_approval"] == "approved" and said["number"] == change["number"]
    assert events(factory, "cab-approved", run_id)

    # a repeat once the run has moved on is answered as the first, handed to nobody
    delivered = len(events(factory, "cab-approval-delivered", run_id))
    late = post(app, notice(change, "approved", 5))
    assert late.status_code == 202 and late.json()["duplicate"] is True
    assert late.json()["state"] == "in_qa"
    assert len(events(factory, "cab-approval-delivered", run_id)) == delivered


def test_a_cab_rejection_arrives_by_notice_and_ends_the_run(
    world: tuple[Factory, Dispatch, Any, dict[str, Key], Path], servicenow: ServiceNowStandin
) -> None:
    factory, _, app, _, _ = world
    run_id, change = waiting_run(world)
    servicenow.approvals[change["sys_id"]] = "rejected"
    servicenow.tables["sysapproval_approver"] = [
        {"sysapproval": change["sys_id"], "state": "rejected",
         "approver.user_name": "cab.chair", "comments": "no rollback rehearsal"},
    ]  # fmt: skip
    answer = post(app, notice(change, "rejected", 7))
    assert answer.status_code == 202, answer.text
    assert answer.json()["state"] == "rejected"
    assert "cab.chair: no rollback rehearsal" in answer.json()["reason"]
    assert factory.store.require_run(run_id).state is RunState.REJECTED


def test_a_change_no_run_waits_on_is_404_and_a_malformed_notice_422_each_audited_once(
    world: tuple[Factory, Dispatch, Any, dict[str, Key], Path],
) -> None:
    factory, _, app, _, _ = world
    before = len(events(factory, "cab-approval-delivery-refused"))
    stranger = {"number": "CHG0099999", "sys_id": "f" * 32}
    unknown = post(app, notice(stranger, "approved", 1))
    assert unknown.status_code == 404, unknown.text
    assert "no approved run waits on change CHG0099999" in unknown.json()["detail"]
    malformed = post(app, json.dumps({"number": "CHG1", "sys_id": "e" * 32}).encode())
    assert malformed.status_code == 422, malformed.text
    assert "`approval` is missing" in malformed.json()["detail"]
    refused = events(factory, "cab-approval-delivery-refused")
    assert len(refused) == before + 2
    assert refused[-2]["delivery_digest"].startswith("sha256:")

    repeat = post(app, notice(stranger, "approved", 1))  # the same update: answered as before
    assert repeat.status_code == 404 and "a repeat" in repeat.json()["detail"]
    assert len(events(factory, "cab-approval-delivery-refused")) == before + 2
    # the refusals are stored as deliveries with their reason
    stored = {d.delivery_id: d for d in world[1].queue.search(limit=1000)}
    assert stored[f"{'f' * 32}:1"].status == "refused"


def test_unauthenticated_notices_are_tallied_not_audited_and_limited_per_client(
    world: tuple[Factory, Dispatch, Any, dict[str, Key], Path],
) -> None:
    factory, dispatch, app, _, _ = world
    run_id, change = waiting_run(world)
    body = notice(change, "approved", 9)
    before = len(events(factory, "cab-approval-delivery-refused"))
    answers = [post(app, body, token="guess", client="10.0.0.66").status_code for _ in range(4)]
    answers.append(post(app, body, token=None, client="10.0.0.66").status_code)
    assert answers == [401] * BUDGET + [429, 429]
    assert post(app, b"x" * (2 * 1_048_576), client="10.0.0.67").status_code == 413
    assert len(events(factory, "cab-approval-delivery-refused")) == before  # not one by one
    assert factory.store.require_run(run_id).state is RunState.APPROVED
    assert not events(factory, "cab-approval-delivered", run_id)

    # a signed notice from the limited client is never refused by the budget
    signed = post(app, body, client="10.0.0.66")
    assert signed.status_code == 202, signed.text
    assert signed.json()["run_id"] == run_id

    dispatch.intake.close()  # publish the minute's tally
    tallies = [
        e for e in events(factory, "webhook-rejections") if e["source"] == "servicenow-change"
    ]
    by_reason = {e["reason"]: e["count"] for e in tallies}
    assert by_reason["signature"] >= BUDGET and by_reason["rate-limited"] >= 2
    assert by_reason["oversized"] >= 1


def test_a_stale_notice_is_a_replay(
    world: tuple[Factory, Dispatch, Any, dict[str, Key], Path],
) -> None:
    factory, _, app, _, _ = world
    run_id, change = waiting_run(world)
    old = str(int((time.time() - 3600) * 1000))
    stale = post(app, notice(change, "approved", 11, sent_at=old), client="10.0.0.70")
    assert stale.status_code == 401 and "replay window" in stale.json()["detail"]
    assert not events(factory, "cab-approval-delivered", run_id)


def test_the_route_is_in_the_openapi_document(
    world: tuple[Factory, Dispatch, Any, dict[str, Key], Path],
) -> None:
    document = world[2].openapi()
    operation = document["paths"][PATH]["post"]
    assert operation["operationId"] == "receive_servicenow_change"
    assert {"202", "401", "404", "413", "422", "429"} <= set(operation["responses"])
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["number", "sys_id", "approval"]


def test_servicenow_down_leaves_the_run_approved_and_says_why(
    world: tuple[Factory, Dispatch, Any, dict[str, Key], Path], servicenow: ServiceNowStandin
) -> None:
    factory, _, app, _, _ = world
    run_id, change = waiting_run(world)
    servicenow.down = True
    try:
        answer = post(app, notice(change, "approved", 13))
    finally:
        servicenow.down = False
    assert answer.status_code == 202, answer.text
    assert answer.json()["state"] == "approved" and answer.json()["run_id"] == run_id
    assert "could not read the CAB's approval" in answer.json()["reason"]
    assert factory.store.require_run(run_id).state is RunState.APPROVED
    assert events(factory, "cab-approval-check-failed", run_id)


# -- what the red team found: forged notices that pre-empt ServiceNow's, and floods ----------


def test_a_forged_notice_that_took_the_next_ids_first_does_not_stop_the_hand_off(
    world: tuple[Factory, Dispatch, Any, dict[str, Key], Path], servicenow: ServiceNowStandin
) -> None:
    factory, _, app, keys, tmp_path = world
    run_id = filed_run(factory, tmp_path)
    change = change_of(factory, run_id)
    # while the run is still in review no approved run waits: refused and stored refused
    early = post(app, notice(change, "approved", 2, junk="forged"), client="10.0.0.90")
    assert early.status_code == 404, early.text
    approve(factory, run_id, keys)
    servicenow.approvals[change["sys_id"]] = "requested"
    for count in (3, 4):  # ServiceNow's next ids, taken while the CAB has not decided
        forged = post(app, notice(change, "approved", count, junk="forged"), client="10.0.0.90")
        assert forged.status_code == 202 and forged.json()["state"] == "approved"
    servicenow.approvals[change["sys_id"]] = "approved"

    real = post(app, notice(change, "approved", 2))  # the id refused while in review
    assert real.status_code == 202, real.text
    assert real.json()["duplicate"] is True and real.json()["state"] == "in_qa"
    assert factory.store.require_run(run_id).state is RunState.IN_QA
    stored = {d.delivery_id: d for d in world[1].queue.search(limit=1000)}
    assert stored[f"{change['sys_id']}:2"].status == "done"  # the latest reading


def test_a_repeated_notice_taken_by_a_forgery_still_hands_the_run_off(
    world: tuple[Factory, Dispatch, Any, dict[str, Key], Path], servicenow: ServiceNowStandin
) -> None:
    factory, _, app, _, _ = world
    run_id, change = waiting_run(world)
    servicenow.approvals[change["sys_id"]] = "requested"
    forged = post(app, notice(change, "approved", 7, junk="forged"), client="10.0.0.91")
    assert forged.status_code == 202 and forged.json()["state"] == "approved"
    servicenow.approvals[change["sys_id"]] = "approved"
    real = post(app, notice(change, "approved", 7))  # ServiceNow's own, same id
    assert real.status_code == 202 and real.json()["state"] == "in_qa", real.text
    assert factory.store.require_run(run_id).state is RunState.IN_QA


def test_authenticated_refusals_are_audited_up_to_the_budget_then_answered_429_and_counted(
    world: tuple[Factory, Dispatch, Any, dict[str, Key], Path], servicenow: ServiceNowStandin
) -> None:
    factory, dispatch, app, _, _ = world
    run_id, change = waiting_run(world)
    servicenow.approvals[change["sys_id"]] = "approved"
    before = len(events(factory, "cab-approval-delivery-refused"))
    flood = "10.0.0.92"
    codes = []
    for i in range(BUDGET + 3):
        stranger = {"number": f"CHG9{i:06d}", "sys_id": f"ab{i:030x}"}
        codes.append(post(app, notice(stranger, "approved", 1), client=flood).status_code)
    assert codes == [404] * BUDGET + [429] * 3
    malformed = post(app, json.dumps({"number": "CHG2", "sys_id": "d" * 32}).encode(),
                     client=flood)  # fmt: skip
    assert malformed.status_code == 429
    assert len(events(factory, "cab-approval-delivery-refused")) == before + BUDGET
    assert (
        post(
            app, notice({"number": "CHG1", "sys_id": "c" * 32}, "approved", 1), client="10.0.0.93"
        ).status_code
        == 404
    )  # another client: its own budget

    # a notice of a change an approved run waits on is never refused by the budget
    moved = post(app, notice(change, "approved", 3), client=flood)
    assert moved.status_code == 202 and moved.json()["state"] == "in_qa", moved.text

    dispatch.intake.close()  # publish the minute's count
    [summary] = [e for e in events(factory, "cab-approval-delivery-refusals")
                 if e["client"]["text"] == flood]  # fmt: skip
    assert summary["count"] == 4 and summary["source"] == "servicenow-change"
    assert summary["first_delivery_id"]["text"] == f"ab{BUDGET:030x}:1"


def test_an_approved_run_older_than_a_thousand_newer_runs_is_still_found(
    world: tuple[Factory, Dispatch, Any, dict[str, Key], Path], servicenow: ServiceNowStandin
) -> None:
    factory, _, app, _, _ = world
    run_id, change = waiting_run(world)
    run = factory.store.require_run(run_id)
    later = datetime.now(UTC) + timedelta(minutes=5)
    # 1001 newer runs written straight to the store: only their number and age matter
    newer = [
        {
            "id": f"r-newer-{i:04d}",
            "trigger_id": run.trigger_id,
            "kind": run.kind.value,
            "repository": run.repository,
            "sponsor": "",
            "agent_id": "",
            "state": "refused",
            "reason": "",
            "created_at": later + timedelta(seconds=i),
        }
        for i in range(1001)
    ]
    with Session(factory.store.engine) as session, session.begin():
        session.execute(insert(RunRow), newer)
    assert run_id not in {r.id for r in factory.store.search_runs(limit=1000)}
    servicenow.approvals[change["sys_id"]] = "approved"
    moved = post(app, notice(change, "approved", 2), client="10.0.0.94")
    assert moved.status_code == 202 and moved.json()["run_id"] == run_id, moved.text
    assert factory.store.require_run(run_id).state is RunState.IN_QA


class SlowTableApi:
    """Holds ServiceNow's answers about one change until released (at most 2.5 s)."""

    def __init__(self, servicenow: ServiceNowStandin, sys_id: str) -> None:
        self.asked, self.release = threading.Event(), threading.Event()
        self._answer, self._sys_id = servicenow.answer, sys_id

    def __call__(self, request: RecordedRequest) -> tuple[int, dict[str, str], bytes]:
        if request.path.endswith(self._sys_id):
            self.asked.set()
            self.release.wait(2.5)
        return self._answer(request)


def in_thread(call: Callable[[], httpx.Response]) -> tuple[threading.Thread, list[httpx.Response]]:
    answers: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: answers.append(call()), daemon=True)
    thread.start()
    return thread, answers


def test_a_slow_table_api_holds_up_no_other_change_and_one_change_is_handed_off_once(
    world: tuple[Factory, Dispatch, Any, dict[str, Key], Path],
    servicenow: ServiceNowStandin,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    factory, _, app, _, _ = world
    slow_run, slow_change = waiting_run(world)
    other_run, other_change = waiting_run(world)
    for change in (slow_change, other_change):
        servicenow.approvals[change["sys_id"]] = "approved"
    slow = SlowTableApi(servicenow, slow_change["sys_id"])
    monkeypatch.setattr(servicenow, "answer", slow)
    first, first_answer = in_thread(lambda: post(app, notice(slow_change, "approved", 2)))
    second = None
    try:
        assert slow.asked.wait(2), "the notice never read the Table API"
        # another notice of the same change waits its turn; another change's does not
        second, second_answer = in_thread(lambda: post(app, notice(slow_change, "approved", 3)))
        other = post(app, notice(other_change, "approved", 2))
        answered_first = first.is_alive()
    finally:
        slow.release.set()
        first.join(5)
        if second is not None:
            second.join(5)
    assert answered_first, "a notice of another change waited for the slow Table API"
    assert other.status_code == 202 and other.json()["state"] == "in_qa", other.text
    assert factory.store.require_run(other_run).state is RunState.IN_QA
    assert first_answer[0].status_code == 202 and first_answer[0].json()["state"] == "in_qa"
    # the second notice came after the hand-off: its run no longer waits, and nothing broke
    assert second_answer[0].status_code == 404, second_answer[0].text
    assert factory.store.require_run(slow_run).state is RunState.IN_QA
    assert len(events(factory, "cab-approved", slow_run)) == 1
