"""The CAB's gate before the hand-off: an approved change that is not a standard change waits
until its ServiceNow change request is approved (read back through the Table API of a local
stand-in, or prompted by a business rule's signed notice), then goes to QA and UAT; a CAB
rejection ends the run with the CAB's reason; an instance that is down leaves it waiting."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from codefactory.context.credentials import vendor_client
from codefactory.domain import CheckResult, RunState
from codefactory.factory import Factory
from codefactory.identity.ssh_signatures import REVIEW_NAMESPACE, sign
from codefactory.identity.statements import SIGN_OFF_NAMESPACE
from codefactory.review.change_requests import (
    ApprovalDeliveryInvalid,
    ApprovalDeliveryUnauthenticated,
    CabApprovalPending,
    CabCheckFailed,
    ChangeFiling,
    ChangeRequestMissing,
)
from codefactory.review.settings import ChangeSettings, ReviewTrackSettings
from codefactory.runs.review import HandOffNotDue
from codefactory.triggers.port import Delivery
from tests.context_helpers import vendor_settings
from tests.context_standins.vendors import ServiceNowStandin
from tests.integration.signed_people import Key, factory_for, run_in_review
from tests.integration.test_review_track import track_people

SECRET = "business-rule-secret"
AGENT_ENGINE = "agent:pydantic-ai"  # not a recipe: a normal change, for the CAB


def running_servicenow() -> Iterator[ServiceNowStandin]:
    """A ServiceNow stand-in serving on loopback until the generator is closed (the body of a
    module-scoped fixture)."""
    standin = ServiceNowStandin()
    standin.start()
    try:
        yield standin
    finally:
        standin.stop()


def cab_factory(
    tmp_path: Path, servicenow: ServiceNowStandin, **settings: object
) -> tuple[Factory, dict[str, Key]]:
    """The factory of the CAB tests and its people's keys: the track's people in a directory
    under `tmp_path`, change requests filed in `servicenow` for CAB-Payments, QA and UAT
    sign-offs, plus any further `Settings` fields in `settings`."""
    directory, keys = track_people(tmp_path)
    fields = vendor_settings(tmp_path / "secrets", servicenow=servicenow)
    factory = factory_for(
        tmp_path,
        directory,
        servicenow=fields["servicenow"],
        changes=ChangeSettings(file_in_servicenow=True, assignment_group="CAB-Payments"),
        review=ReviewTrackSettings(sign_offs=["qa", "uat"]),
        **settings,
    )
    return factory, keys


@pytest.fixture(scope="module")
def servicenow() -> Iterator[ServiceNowStandin]:
    yield from running_servicenow()


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, servicenow: ServiceNowStandin
) -> tuple[Factory, dict[str, Key], Path]:
    tmp_path = tmp_path_factory.mktemp("change-approval")
    factory, keys = cab_factory(tmp_path, servicenow)
    return factory, keys, tmp_path


@pytest.fixture(autouse=True)
def instance_up(servicenow: ServiceNowStandin) -> Iterator[None]:
    servicenow.down = False
    yield
    servicenow.down = False


def filed_run(factory: Factory, tmp_path: Path, *, engine: str = AGENT_ENGINE) -> str:
    """A run in review whose change request was filed in ServiceNow by the production hook;
    its one check passed."""
    passed = (CheckResult(check="lint", passed=True),)
    run_id = run_in_review(factory, tmp_path, engine=engine, results=passed)
    run = factory.store.require_run(run_id)
    ChangeFiling(
        settings=factory.settings.changes,
        client=lambda: vendor_client("servicenow", factory.settings.servicenow),
        record=factory.store.append,
    )(run, Path(run.package_dir))
    return run_id


def change_of(factory: Factory, run_id: str) -> dict[str, str]:
    [filed] = [e.data for e in factory.audit.events(run_id) if e.name == "change-request-filed"]
    return {"number": str(filed["number"]), "sys_id": str(filed["sys_id"])}


def approve(factory: Factory, run_id: str, keys: dict[str, Key]) -> None:
    body = factory.review.statement_for(run_id, reviewer="jordan.lee", approve=True)
    signature = sign(body, keys["jordan.lee"].private, REVIEW_NAMESPACE)
    factory.review.decide(
        run_id, statement=body, signature=signature, reviewer="jordan.lee", approve=True
    )


def approved_filed_run(
    factory: Factory, tmp_path: Path, keys: dict[str, Key]
) -> tuple[str, dict[str, str]]:
    """A filed run its reviewer approved, waiting for the CAB (`approved`), and its change
    request (`change_of`)."""
    run_id = filed_run(factory, tmp_path)
    approve(factory, run_id, keys)
    assert factory.store.require_run(run_id).state is RunState.APPROVED
    return run_id, change_of(factory, run_id)


def sign_off(factory: Factory, run_id: str, keys: dict[str, Key], who: str, stage: str):  # type: ignore[no-untyped-def]
    body = factory.review.sign_off_statement(run_id, stage=stage, signer=who, accept=True)
    signature = sign(body, keys[who].private, SIGN_OFF_NAMESPACE)
    return factory.review.sign_off(
        run_id, stage=stage, statement=body, signature=signature, signer=who, accept=True
    )


def names(factory: Factory, run_id: str) -> list[str]:
    return [e.name for e in factory.audit.events(run_id)]


def test_an_approved_normal_change_waits_for_the_cab_then_goes_through_qa_and_uat(
    world: tuple[Factory, dict[str, Key], Path], servicenow: ServiceNowStandin
) -> None:
    factory, keys, tmp_path = world
    run_id = filed_run(factory, tmp_path)
    change = change_of(factory, run_id)
    assert json.loads((Path(factory.store.require_run(run_id).package_dir) / "cab.json")
                      .read_text())["type"] == "normal"  # fmt: skip
    approve(factory, run_id, keys)
    run = factory.store.require_run(run_id)
    assert run.state is RunState.APPROVED
    assert run.reason.endswith(f"waiting for CAB approval of {change['number']}")
    assert "cab-approval-awaited" in names(factory, run_id)

    servicenow.approvals[change["sys_id"]] = "requested"  # the CAB has it on its agenda
    with pytest.raises(CabApprovalPending, match=f"waits for CAB approval of {change['number']}"):
        factory.review.hand_off(run_id)
    assert factory.store.require_run(run_id).state is RunState.APPROVED
    [read, *_] = [r for r in servicenow.requests if r.path.endswith(change["sys_id"])]
    assert read.method == "GET" and read.query["sysparm_fields"] == ["approval,number,state"]
    assert read.headers["authorization"].startswith("Basic ")

    servicenow.approvals[change["sys_id"]] = "approved"
    run = factory.review.hand_off(run_id)
    assert run.state is RunState.IN_QA, run.reason
    assert f"CAB approved {change['number']}" in run.reason
    approval = json.loads((Path(run.package_dir) / "approval.json").read_text())
    assert approval["change_request"] == change["number"]
    assert approval["cab_approval"] == "approved" and approval["approved_by"] == "jordan.lee"
    assert approval["statement_digest"].startswith("sha256:")
    assert approval["qa_evidence"]["rollback_plan"] == "rollback.md"
    assert (Path(run.package_dir) / approval["qa_evidence"]["rollback_plan"]).is_file()
    with pytest.raises(HandOffNotDue, match="`in_qa`"):
        factory.review.hand_off(run_id)

    assert sign_off(factory, run_id, keys, "quinn", "qa").state is RunState.IN_UAT
    assert sign_off(factory, run_id, keys, "uma", "uat").state is RunState.ACCEPTED
    states = [c.state.value for c in factory.store.require_run(run_id).history]
    assert states[-5:] == ["in_review", "approved", "in_qa", "in_uat", "accepted"]
    assert "cab-approved" in names(factory, run_id)


def test_a_cab_rejection_ends_the_run_with_the_cabs_reason(
    world: tuple[Factory, dict[str, Key], Path], servicenow: ServiceNowStandin
) -> None:
    factory, keys, tmp_path = world
    run_id, change = approved_filed_run(factory, tmp_path, keys)
    servicenow.approvals[change["sys_id"]] = "rejected"
    servicenow.tables["sysapproval_approver"] = [
        {"sysapproval": change["sys_id"], "state": "rejected", "approver.user_name": "cab.chair",
         "comments": "no rollback rehearsal for the payments service"},
        {"sysapproval": change["sys_id"], "state": "approved", "approver.user_name": "ops.lead",
         "comments": "fine by me"},
    ]  # fmt: skip
    run = factory.review.hand_off(run_id)
    assert run.state is RunState.REJECTED
    assert run.reason == (
        f"rejected by the CAB in {change['number']}: cab.chair: no rollback rehearsal for the "
        "payments service"
    )
    assert not (Path(run.package_dir) / "approval.json").exists()
    [rejected] = [e for e in factory.audit.events(run_id) if e.name == "cab-rejected"]
    assert rejected.actor == "service:servicenow"


def test_a_change_cancelled_in_servicenow_ends_the_run_and_a_lying_answer_is_refused(
    world: tuple[Factory, dict[str, Key], Path], servicenow: ServiceNowStandin
) -> None:
    factory, keys, tmp_path = world
    run_id, change = approved_filed_run(factory, tmp_path, keys)
    record = next(r for r in servicenow.created if r["sys_id"] == change["sys_id"])
    number = record["number"]
    record["number"] = "CHG9999999"  # the instance answers for another change
    servicenow.approvals[change["sys_id"]] = "approved"
    with pytest.raises(CabCheckFailed):
        factory.review.hand_off(run_id)
    assert factory.store.require_run(run_id).state is RunState.APPROVED
    record["number"], record["state"] = number, "4"  # Canceled, approval left as it was
    run = factory.review.hand_off(run_id)
    assert run.state is RunState.REJECTED
    assert run.reason == f"rejected by the CAB in {number}: {number} was cancelled in ServiceNow"


def test_servicenow_down_is_named_audited_and_the_run_keeps_waiting(
    world: tuple[Factory, dict[str, Key], Path], servicenow: ServiceNowStandin
) -> None:
    factory, keys, tmp_path = world
    run_id = filed_run(factory, tmp_path)
    change = change_of(factory, run_id)
    servicenow.approvals[change["sys_id"]] = "approved"
    servicenow.down = True
    approve(factory, run_id, keys)  # the verdict is taken; the gate could not be read
    assert factory.store.require_run(run_id).state is RunState.APPROVED
    with pytest.raises(CabCheckFailed, match="answered 503"):
        factory.review.hand_off(run_id)
    failed = [e.data for e in factory.audit.events(run_id) if e.name == "cab-approval-check-failed"]
    assert len(failed) == 2 and failed[0]["number"] == change["number"]
    assert factory.store.require_run(run_id).state is RunState.APPROVED
    servicenow.down = False
    assert factory.review.hand_off(run_id).state is RunState.IN_QA


def test_a_business_rule_notice_prompts_the_hand_off_and_a_forged_one_is_refused(
    world: tuple[Factory, dict[str, Key], Path], servicenow: ServiceNowStandin
) -> None:
    factory, keys, tmp_path = world
    run_id, change = approved_filed_run(factory, tmp_path, keys)

    def delivery(token: str, **body: str) -> Delivery:
        return Delivery(
            source="servicenow-change",
            headers={"x-codefactory-token": token, "content-type": "application/json"},
            body=json.dumps(body).encode(),
            received_at=datetime.now(UTC),
        )

    said = {**change, "approval": "approved"}

    def refused() -> list[str]:
        found = factory.audit.events()
        return [str(e.data["reason"]) for e in found if e.name == "cab-approval-delivery-refused"]

    before = len(refused())
    with pytest.raises(ApprovalDeliveryUnauthenticated, match="does not match"):
        factory.review.cab_approval_delivered(delivery("guess", **said), SECRET)
    with pytest.raises(ApprovalDeliveryUnauthenticated, match="no shared secret"):
        factory.review.cab_approval_delivered(delivery("", **said), "")
    assert len(refused()) == before  # unauthenticated: tallied by the route, not logged each
    with pytest.raises(ApprovalDeliveryInvalid, match="no approved run waits on change"):
        factory.review.cab_approval_delivered(
            delivery(SECRET, **{**said, "sys_id": "f" * 32}), SECRET
        )
    with pytest.raises(ApprovalDeliveryInvalid, match="`approval` is missing"):
        factory.review.cab_approval_delivered(delivery(SECRET, **change), SECRET)
    assert len(refused()) == before + 2
    # the notice says approved, ServiceNow does not yet: the Table API is what counts
    servicenow.approvals[change["sys_id"]] = "requested"
    with pytest.raises(CabApprovalPending):
        factory.review.cab_approval_delivered(delivery(SECRET, **said), SECRET)
    servicenow.approvals[change["sys_id"]] = "approved"
    run = factory.review.cab_approval_delivered(delivery(SECRET, **said), SECRET)
    assert run.state is RunState.IN_QA
    assert names(factory, run_id).count("cab-approval-delivered") == 2


def test_a_standard_change_skips_the_cab_and_an_unfiled_one_waits(
    world: tuple[Factory, dict[str, Key], Path], servicenow: ServiceNowStandin
) -> None:
    factory, keys, tmp_path = world
    standard = filed_run(factory, tmp_path, engine="recipe:lint-fix")
    cab = json.loads((Path(factory.store.require_run(standard).package_dir) / "cab.json")
                     .read_text())  # fmt: skip
    assert cab["type"] == "standard"
    approve(factory, standard, keys)
    assert factory.store.require_run(standard).state is RunState.IN_QA

    servicenow.fail_next(500)  # the filing fails: there is nothing for the CAB to approve
    unfiled = filed_run(factory, tmp_path)
    approve(factory, unfiled, keys)
    run = factory.store.require_run(unfiled)
    assert run.state is RunState.APPROVED and "no change request was filed" in run.reason
    with pytest.raises(ChangeRequestMissing, match="no change request was filed"):
        factory.review.hand_off(unfiled)


@pytest.mark.usefixtures("bwrap_available")
def test_the_loop_files_the_change_and_the_hand_off_waits_for_the_cab(
    tmp_path: Path, uv_cache: Path, servicenow: ServiceNowStandin
) -> None:
    """The whole way through the factory's own wiring: a ticket's run is packaged, its change
    request filed by the loop's hook, and the approval waits for the CAB's."""
    from codefactory.config import Settings
    from codefactory.factory import build_factory
    from codefactory.identity.settings import IdentitySettings
    from codefactory.runs.tickets import accept_ticket
    from tests.acceptance.conftest import TEMPLATE
    from tests.conftest import data_dir_sharing_cache, sample_service
    from tests.integration.signed_people import reviewer_directory

    directory, key = reviewer_directory(tmp_path / "people")
    fields = vendor_settings(tmp_path / "secrets", servicenow=servicenow)
    factory = build_factory(
        Settings(
            data_dir=data_dir_sharing_cache(tmp_path / "data", uv_cache),
            identity=IdentitySettings(directory_file=directory),
            servicenow=fields["servicenow"],
            changes=ChangeSettings(file_in_servicenow=True),
            review=ReviewTrackSettings(sign_offs=["qa", "uat"]),
        )
    )
    payload = (TEMPLATE / "tickets" / "SVC-101.json").read_bytes()
    run = accept_ticket(factory, payload=payload, repo=sample_service(tmp_path / "service"))
    assert run.state is RunState.IN_REVIEW, run.reason
    cab = json.loads((Path(run.package_dir) / "cab.json").read_text())
    assert cab["type"] == "normal", cab["risk"]
    change = change_of(factory, run.id)
    body = factory.review.statement_for(run.id, reviewer="jordan.lee", approve=True)
    factory.review.decide(run.id, statement=body, signature=sign(body, key, REVIEW_NAMESPACE),
                          reviewer="jordan.lee", approve=True)  # fmt: skip
    assert factory.store.require_run(run.id).state is RunState.APPROVED
    servicenow.approvals[change["sys_id"]] = "approved"
    assert factory.review.hand_off(run.id).state is RunState.IN_QA
