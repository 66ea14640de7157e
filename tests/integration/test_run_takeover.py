"""Runs survive their worker: a worker process killed (SIGKILL) mid-run leaves a lease that
expires; another process's sweeper takes the run over and resumes it from its last recorded
state, each step recognising what the dead worker already did. Real loop, real bubblewrap,
real SQLite, a real killed process (tests/crash_worker.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from codefactory.config import Settings
from codefactory.dispatch.celery_executor import drive_task
from codefactory.dispatch.service import Execution, build_dispatch, build_execution
from codefactory.dispatch.settings import DispatchSettings
from codefactory.domain import RunState, UnknownEvent
from codefactory.factory import Factory, build_factory
from codefactory.identity.settings import IdentitySettings
from codefactory.identity.ssh_signatures import REVIEW_NAMESPACE, sign
from codefactory.package.builder import FolderPackageBuilder
from codefactory.sandbox.halting import ExecHalted
from codefactory.sandbox.layers import sweep_stale
from codefactory.sandbox.port import Phase
from codefactory.store.deliveries import DONE, QUEUED, RUNNING, DeliveryQueue
from codefactory.store.leases import Lease, LeaseLost, RunLeases, fenced, forget_lost, mark_lost
from codefactory.store.operations_tables import RunLeaseRow
from codefactory.web.app import create_app
from tests.directory_helpers import person, standard_directory
from tests.fixtures.webhooks.signed import headers
from tests.integration.signed_people import Key, make_key
from tests.integration.test_webhooks import labeled, post, sample_repo, settings_for

ROOT = Path(__file__).resolve().parents[2]
HEARTBEAT_S = 0.5


@pytest.fixture
def reviewer(tmp_path: Path) -> Key:
    return make_key(tmp_path / "keys", "jordan.lee")


@pytest.fixture
def settings(tmp_path: Path, reviewer: Key) -> Settings:
    directory = standard_directory(
        tmp_path / "people",
        {"jordan.lee": person("Jordan Lee", roles=["reviewer"], ssh_keys=[reviewer.public])},
    )
    base = settings_for(tmp_path, sample_repo(tmp_path))
    return base.model_copy(
        update={
            "identity": IdentitySettings(directory_file=directory),
            "dispatch": DispatchSettings(heartbeat_s=HEARTBEAT_S),
        }
    )


@pytest.fixture
def factory(settings: Settings) -> Iterator[Factory]:
    yield build_factory(settings)
    # the killed worker's workspace: unmounted and removed as the next backend start would
    sweep_stale(settings.workspaces_dir, min_age_s=0)


def queued_run(factory: Factory) -> str:
    """A lint run authorized at intake from a signed GitHub delivery, waiting for a worker."""
    app = create_app(factory, build_dispatch(factory, workers=0))
    body = labeled()
    receipt = post(app, "/webhooks/github", body, headers("github", body, event="issues")).json()
    assert receipt["state"] == "authorized", receipt
    return str(receipt["run_id"])


def kill_worker_at(settings: Settings, run_id: str, point: str) -> None:
    """Drive the run in a worker process that SIGKILLs itself at `point`."""
    env = {
        **os.environ,
        "CODEFACTORY_DATA_DIR": str(settings.data_dir),
        "CODEFACTORY_IDENTITY__DIRECTORY_FILE": str(settings.identity.directory_file),
        "CODEFACTORY_DISPATCH__HEARTBEAT_S": str(HEARTBEAT_S),
    }
    worker = subprocess.run(
        [sys.executable, "-m", "tests.crash_worker", run_id, point],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert worker.returncode == -9, worker.stderr[-3000:]


def take_over(factory: Factory, run_id: str, timeout_s: float = 120.0) -> Execution:
    """Sweep in this process until the run rests or ends."""
    execution = build_execution(factory, role="survivor")
    execution.heartbeats.start()
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            execution.sweeper.take_over()
            run = factory.store.require_run(run_id)
            if run.state.is_terminal or run.state is RunState.IN_REVIEW:
                for thread in list(execution.sweeper._driving.values()):
                    thread.join(30)
                return execution
            time.sleep(HEARTBEAT_S / 4)
    finally:
        execution.heartbeats.stop()
    raise AssertionError(f"run {run_id} still {factory.store.require_run(run_id).state}")


def events(factory: Factory, run_id: str, name: str) -> list[dict[str, Any]]:
    return [e.data for e in factory.audit.events(run_id) if e.name == name]


def approve(factory: Factory, run_id: str, key: Key) -> None:
    body = factory.review.statement_for(run_id, reviewer="jordan.lee", approve=True)
    signature = sign(body, key.private, REVIEW_NAMESPACE)
    factory.review.decide(
        run_id, statement=body, signature=signature, reviewer="jordan.lee", approve=True
    )


def test_a_lease_is_taken_over_only_after_its_owner_stops_heartbeating(factory: Factory) -> None:
    run_id = queued_run(factory)
    leases = RunLeases(factory.store.engine, factory.audit, lease_s=0.3)
    first = leases.acquire(run_id, "a")
    assert first is not None and first.fence == 1
    assert leases.acquire(run_id, "b") is None  # alive: nobody else gets it
    assert leases.heartbeat(first)
    time.sleep(0.4)
    assert leases.expired() == [run_id]
    second = leases.acquire(run_id, "b")
    assert second is not None and (second.fence, second.taken_over_from) == (2, "a")
    assert not leases.heartbeat(first)  # the old owner learns it lost the run
    [taken] = events(factory, run_id, "run-taken-over")
    assert (taken["previous_owner"], taken["owner"], taken["state"]) == ("a", "b", "authorized")
    leases.release(second)
    assert leases.holder(run_id) is None and leases.expired() == []
    assert leases.total_takeovers() == 1


def test_a_worker_that_lost_its_lease_writes_nothing_more(factory: Factory) -> None:
    run_id = queued_run(factory)
    leases = RunLeases(factory.store.engine, factory.audit, lease_s=0.2)
    stale = leases.acquire(run_id, "paused")
    assert stale is not None
    time.sleep(0.3)
    assert leases.acquire(run_id, "successor") is not None
    before = len(factory.audit.events(run_id))
    with fenced(stale), pytest.raises(LeaseLost), factory.store.atomic() as tx:
        tx.append(UnknownEvent(kind="engine-proposed", actor="agent", run_id=run_id))
    assert len(factory.audit.events(run_id)) == before
    assert factory.store.require_run(run_id).state is RunState.AUTHORIZED


@pytest.mark.usefixtures("bwrap_available")
def test_a_run_whose_worker_was_killed_mid_verify_is_resumed_in_a_new_workspace(
    settings: Settings, factory: Factory
) -> None:
    run_id = queued_run(factory)
    kill_worker_at(settings, run_id, "verifying")
    assert factory.store.require_run(run_id).state is RunState.VERIFYING
    take_over(factory, run_id)
    run = factory.store.require_run(run_id)
    assert run.state is RunState.IN_REVIEW, run.reason
    [taken] = events(factory, run_id, "run-taken-over")
    assert taken["previous_owner"].startswith("crashing@") and taken["state"] == "verifying"
    provisioned = [s.reason for s in run.history if s.state is RunState.PROVISIONED]
    assert len(provisioned) == 2 and provisioned[1].startswith("resumed from `verifying`")
    assert factory.audit.verify().ok


@pytest.mark.usefixtures("bwrap_available")
def test_a_commit_and_package_a_killed_worker_left_are_recognised(
    settings: Settings, factory: Factory
) -> None:
    run_id = queued_run(factory)
    kill_worker_at(settings, run_id, "package-written")
    assert factory.store.require_run(run_id).state is RunState.VERIFIED
    [first_commit] = events(factory, run_id, "commit-created")
    take_over(factory, run_id)
    run = factory.store.require_run(run_id)
    assert run.state is RunState.IN_REVIEW, run.reason
    # the same change on the same base: the same commit request, the same commit
    assert len(events(factory, run_id, "commit-requested")) == 1
    assert run.head_commit == first_commit["commit"]
    [aside] = events(factory, run_id, "package-set-aside")
    assert Path(aside["moved_to"]).is_dir() and Path(run.package_dir).is_dir()
    assert factory.audit.verify().ok


@pytest.mark.usefixtures("bwrap_available")
def test_review_approve_works_on_a_run_whose_worker_died_after_packaging(
    settings: Settings, factory: Factory, reviewer: Key
) -> None:
    run_id = queued_run(factory)
    kill_worker_at(settings, run_id, "packaged")
    assert factory.store.require_run(run_id).state is RunState.PACKAGED
    take_over(factory, run_id)
    assert factory.store.require_run(run_id).state is RunState.IN_REVIEW
    approve(factory, run_id, reviewer)
    run = factory.store.require_run(run_id)
    assert run.state in (RunState.APPROVED, RunState.HANDED_OFF), run.reason
    assert len(events(factory, run_id, "package-built")) == 1
    assert factory.audit.verify().ok


@pytest.mark.usefixtures("bwrap_available")
def test_a_stale_worker_never_moves_the_package_its_successor_recorded(
    factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = queued_run(factory)
    paused, resume = threading.Event(), threading.Event()
    original = FolderPackageBuilder._move_into_place
    calls: list[str] = []

    def move(scratch: Path, target: Path, run: str) -> None:
        calls.append(run)
        if len(calls) == 1:  # worker A stops right here (a GC pause, SIGSTOP, a frozen VM)
            paused.set()
            resume.wait(120)
        original(scratch, target, run)

    monkeypatch.setattr(FolderPackageBuilder, "_move_into_place", staticmethod(move))
    first, second = build_execution(factory, role="A"), build_execution(factory, role="B")
    outcome: dict[str, object] = {}
    worker = threading.Thread(target=lambda: outcome.update(a=first.driver.drive(run_id)))
    worker.start()
    assert paused.wait(120), factory.store.require_run(run_id).reason
    expire_lease(factory, run_id)  # A stopped heartbeating
    taken = second.driver.drive(run_id)
    assert taken is not None and taken.state is RunState.IN_REVIEW, taken
    resume.set()
    worker.join(120)
    run = factory.store.require_run(run_id)
    assert outcome["a"] is None  # A learnt it lost the run and wrote nothing
    assert run.state is RunState.IN_REVIEW and Path(run.package_dir).is_dir()
    assert events(factory, run_id, "package-set-aside") == []
    assert factory.audit.verify().ok


@pytest.mark.usefixtures("bwrap_available")
def test_a_worker_that_lost_its_lease_has_its_engine_command_killed(factory: Factory) -> None:
    run_id = queued_run(factory)
    run = factory.store.require_run(run_id)
    lease = RunLeases(factory.store.engine, factory.audit, lease_s=60).acquire(run_id, "w/1")
    assert lease is not None
    with fenced(lease):  # as the driver provisions it
        workspace = factory.loop.sandbox.provision(
            repo=Path(run.repository_path), commit="HEAD", run_id=run_id
        )
    successor = Lease(run_id=run_id, owner="w/2", fence=lease.fence + 1)
    try:
        mark_lost(successor, "not this one: another lease of the run")
        threading.Timer(1.0, mark_lost, args=(lease, "another worker took it over")).start()
        started = time.monotonic()
        with pytest.raises(ExecHalted, match="another worker took it over"):
            workspace.exec(["sleep", "60"], phase=Phase.ENGINE, timeout_s=90)
        assert time.monotonic() - started < 20
    finally:
        forget_lost(lease)
        forget_lost(successor)
        workspace.destroy()


def expire_lease(factory: Factory, run_id: str) -> None:
    with Session(factory.store.engine) as session, session.begin():
        session.execute(
            update(RunLeaseRow)
            .where(RunLeaseRow.run_id == run_id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )


def test_a_drive_message_is_trusted_for_nothing_but_a_waiting_delivery(factory: Factory) -> None:
    run_id = queued_run(factory)
    queue = DeliveryQueue(factory.store.engine)
    [delivery] = [d for d in queue.search() if d.run_id == run_id]
    driver = build_execution(factory, role="worker").driver
    for forged in ("1", None, True, {"id": 1}, [delivery.id]):
        assert drive_task(queue, driver, forged).startswith("refused")
    assert "nothing to do" in drive_task(queue, driver, 10**9)
    queue.move(delivery.id, (QUEUED,), RUNNING)  # another worker has it
    assert "nothing to do" in drive_task(queue, driver, delivery.id)
    assert factory.store.require_run(run_id).state is RunState.AUTHORIZED
    assert queue.get_by_id(delivery.id).status == RUNNING  # type: ignore[union-attr]


@pytest.mark.usefixtures("bwrap_available")
def test_a_run_nothing_would_move_on_is_adopted_by_a_sweeper(factory: Factory) -> None:
    run_id = queued_run(factory)
    queue = DeliveryQueue(factory.store.engine)
    [delivery] = [d for d in queue.search() if d.run_id == run_id]
    queue.mark(delivery.id, DONE, reason="a forged message's outcome")  # its real one lost
    sweeper = build_execution(factory, role="survivor").sweeper
    assert sweeper.adopt_orphans() == []  # younger than requeue_after_s: its worker may come
    sweeper.requeue_after_s = 0.0
    assert sweeper.adopt_orphans() == [run_id]
    for thread in list(sweeper._driving.values()):
        thread.join(120)
    assert factory.store.require_run(run_id).state is RunState.IN_REVIEW
