"""The organisation-wide halt on the real factory (SQLite, bubblewrap, Cedar, the demo's
sample service): raised by `codefactory halt` in another process, it kills a running engine
command within seconds and refuses new runs; a halt without proof or role is refused and
audited; lifting it lets runs start again."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from codefactory.config import Settings
from codefactory.domain import CheckResult, Proposal, Run, RunState, Task
from codefactory.engines.guarded import GuardedEngine, RoundGuard
from codefactory.factory import Factory, build_factory
from codefactory.identity.governance import LEDGER
from codefactory.identity.settings import IdentitySettings
from codefactory.policy.halt import HALT_POLICY_ID
from codefactory.runs.tickets import accept_ticket
from codefactory.sandbox.port import Phase, Workspace
from codefactory.store.halts import HaltStore
from codefactory.triggers.caller import caller_person
from codefactory.triggers.jira import JiraTicketSource
from tests.acceptance.conftest import TEMPLATE
from tests.conftest import data_dir_sharing_cache, sample_service
from tests.directory_helpers import directory_env, os_account, person, write_directory
from tests.integration.signed_people import Key, make_key
from tests.postgres_store import sqlite_store_only
from tests.store_sql import store_sql

pytestmark = pytest.mark.usefixtures("bwrap_available")

CLI = Path(sys.executable).parent / "codefactory"


@dataclass(frozen=True)
class Operators:
    directory: Path
    olive: Key
    """olive.ops holds the `operator` role."""
    dana: Key
    """dana holds no role."""


@pytest.fixture
def operators(tmp_path: Path) -> Operators:
    folder = tmp_path / "people"
    olive, dana = make_key(folder / "keys", "olive"), make_key(folder / "keys", "dana")
    directory = write_directory(
        folder / "directory.toml",
        {
            "priya.shah": person("Priya Shah", roles=["sponsor"], unix=os_account()),
            "olive.ops": person("Olive", roles=["operator"], ssh_keys=[olive.public]),
            "dana": person("Dana", roles=[], ssh_keys=[dana.public]),
        },
    )
    return Operators(directory, olive, dana)


@pytest.fixture
def factory(tmp_path: Path, uv_cache: Path, operators: Operators) -> Iterator[Factory]:
    data_dir = data_dir_sharing_cache(tmp_path / "data", uv_cache)
    identity = IdentitySettings(directory_file=operators.directory)
    built = build_factory(Settings(data_dir=data_dir, identity=identity))
    yield built
    built.store.engine.dispose()  # its connections closed now, not whenever it is collected


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return sample_service(tmp_path / "sample-service")


def halt_cli(
    factory: Factory, operators: Operators, *args: str
) -> subprocess.CompletedProcess[str]:
    """`codefactory halt ...` in a process of its own, on the factory's data folder."""
    keep = ("CODEFACTORY_DATABASE_URL",)  # the test's PostgreSQL database, when it has one
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODEFACTORY_") or k in keep}
    env |= {"CI": "true", "CODEFACTORY_VERIFY__ADVISORIES_MAX_AGE_DAYS": "none"}
    env |= directory_env(operators.directory)
    data_dir = str(factory.settings.data_dir)
    command = [str(CLI), "--data-dir", data_dir, "halt", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)


def lint_ticket() -> bytes:
    return (TEMPLATE / "tickets" / "SVC-102.json").read_bytes()


class SleepingEngine:
    """An engine phase that runs for a minute inside the sandbox (an agent CLI thinking)."""

    name = "test:sleeping"
    version = "0"

    def __init__(self) -> None:
        self.started = threading.Event()
        self.ran_s = 0.0
        self.stopped_at: datetime | None = None

    def propose(
        self,
        task: Task,
        workspace: Workspace,
        feedback: Sequence[CheckResult],
        session: object = None,
    ) -> Proposal:
        self.started.set()
        began = time.monotonic()
        try:
            workspace.exec(["/usr/bin/sleep", "60"], phase=Phase.ENGINE, timeout_s=120)
        finally:
            self.ran_s = time.monotonic() - began
            self.stopped_at = datetime.now(UTC)
        workspace.write_file("service/hostnames.py", b"# slept\n")
        return Proposal(engine=self.name, engine_version=self.version, rationale="slept")


def ledger(factory: Factory, name: str) -> list[dict[str, object]]:
    return [e.data for e in factory.audit.events(LEDGER) if e.name == name]


def test_a_halt_from_another_process_kills_the_engine_then_refuses_runs_until_lifted(
    factory: Factory, repo: Path, operators: Operators
) -> None:
    own_engines = factory.loop.engines
    engine = SleepingEngine()
    factory.loop.engines = {"recipe:lint-fix": engine}
    ended: list[Run] = []
    running = threading.Thread(
        target=lambda: ended.append(accept_ticket(factory, payload=lint_ticket(), repo=repo))
    )
    running.start()
    assert engine.started.wait(180), "the run never reached its engine"
    time.sleep(0.5)  # the command is under way inside the sandbox

    raised = halt_cli(
        factory, operators, "--reason", "incident 7: bad model output",
        "--as", "olive.ops", "--key", str(operators.olive.private),
    )  # fmt: skip
    assert raised.returncode == 0, raised.stderr
    running.join(30)
    assert not running.is_alive()
    halt = HaltStore(factory.store.engine).active()
    assert halt is not None and engine.stopped_at is not None
    stopped_s = (engine.stopped_at - halt.raised_at).total_seconds()
    print(
        f"\nengine command stopped {stopped_s:.2f}s after the halt was raised "
        f"(it ran {engine.ran_s:.1f}s)"
    )
    assert 0 < stopped_s < 5.0
    run = ended[0]
    assert run.state is RunState.FAILED
    assert run.reason.startswith("halted by olive.ops at ")
    assert "incident 7: bad model output" in run.reason
    assert not any(factory.settings.workspaces_dir.iterdir())  # nothing left behind
    [event] = ledger(factory, "halt-raised")
    assert event["reason"] == "incident 7: bad model output"
    assert ledger(factory, "governance-authorized")[-1]["action"] == "halt-raise"

    # a new run is refused by policy, with the halt as its reason, and recorded
    refused = accept_ticket(factory, payload=lint_ticket(), repo=repo)
    assert refused.state is RunState.REFUSED
    assert refused.reason.startswith("halted by olive.ops at ")
    decided = [e.data for e in factory.audit.events(refused.id) if e.name == "policy-decided"]
    assert decided[0]["policy_ids"] == [HALT_POLICY_ID] and decided[0]["allowed"] is False
    assert factory.store.get_trigger(refused.trigger_id) is not None  # the request is kept

    status = halt_cli(factory, operators, "--status")
    assert "the factory is halted by olive.ops" in status.stdout

    lifted = halt_cli(
        factory, operators, "--lift", "--reason", "model rolled back",
        "--as", "olive.ops", "--key", str(operators.olive.private),
    )  # fmt: skip
    assert lifted.returncode == 0, lifted.stderr
    assert HaltStore(factory.store.engine).active() is None
    assert ledger(factory, "halt-lifted")[0]["reason"] == "model rolled back"
    time.sleep(1.1)  # the watch's cached answer expires
    factory.loop.engines = own_engines  # the factory's own lint recipe, guarded
    again = accept_ticket(factory, payload=lint_ticket(), repo=repo)
    assert again.state is RunState.IN_REVIEW, again.reason
    assert factory.audit.verify().ok


def guards_of(factory: Factory) -> tuple[RoundGuard, ...]:
    """The round guards the factory wired around its own engines (the halt, the caps)."""
    engine = factory.loop.engines["recipe:lint-fix"]
    assert isinstance(engine, GuardedEngine)
    return engine.guards


def test_a_halt_without_proof_or_role_is_refused_and_audited(
    factory: Factory, operators: Operators
) -> None:
    bare = halt_cli(factory, operators, "--reason", "I say so", "--as", "olive.ops")
    assert bare.returncode == 1
    assert "halt-raise refused: a name alone proves nothing" in " ".join(bare.stderr.split())
    no_role = halt_cli(
        factory, operators, "--reason", "let me", "--as", "dana",
        "--key", str(operators.dana.private),
    )  # fmt: skip
    assert no_role.returncode == 1
    assert "dana does not hold the role 'operator'" in " ".join(no_role.stderr.split())
    wrong_key = halt_cli(
        factory, operators, "--reason", "as olive", "--as", "olive.ops",
        "--key", str(operators.dana.private),
    )  # fmt: skip
    assert wrong_key.returncode == 1 and "a key of dana, not of olive.ops" in wrong_key.stderr
    nothing = halt_cli(
        factory, operators, "--lift", "--reason", "nothing to lift", "--as", "olive.ops",
        "--key", str(operators.olive.private),
    )  # fmt: skip
    assert nothing.returncode == 1 and "the factory is not halted" in nothing.stderr

    refusals = ledger(factory, "halt-refused")
    assert [r["action"] for r in refusals] == ["halt-raise"] * 3 + ["halt-lift"]
    assert refusals[0]["claimed"] == "olive.ops" and "proves nothing" in str(refusals[0]["reason"])
    assert "does not hold the role 'operator'" in str(refusals[1]["reason"])
    assert len(ledger(factory, "governance-refused")) == 2
    assert HaltStore(factory.store.engine).active() is None
    assert ledger(factory, "halt-raised") == []


def test_a_run_authorized_before_the_halt_never_starts_its_engine(
    factory: Factory, repo: Path
) -> None:
    engine = SleepingEngine()
    factory.loop.engines = {"recipe:lint-fix": GuardedEngine(engine, guards_of(factory))}
    run = accept_ticket_authorized_only(factory, repo)
    assert run.state is RunState.AUTHORIZED
    with factory.store.atomic() as tx:
        HaltStore.raise_in(tx.session, reason="drill", raised_by="olive.ops", at=datetime.now(UTC))
    time.sleep(1.1)
    ended = factory.loop.execute(run.id)
    assert ended.state is RunState.FAILED
    assert ended.reason.startswith("halted by olive.ops at ") and ended.reason.endswith(": drill")
    assert not engine.started.is_set()


def accept_ticket_authorized_only(factory: Factory, repo: Path) -> Run:
    """A run stored and authorized by intake, not yet executed (sponsor: this OS account)."""
    event = JiraTicketSource().parse(
        lint_ticket(), repository=factory.settings.triggers.repository_id(repo)
    )
    sponsor = caller_person(factory.identity.directory)
    run_id = factory.loop.submit(
        event, sponsor=sponsor.id, agent_id=factory.settings.agent_id,
        repository_path=str(repo),
    )  # fmt: skip
    return factory.loop.authorize(run_id)


def test_a_webhook_delivery_during_a_halt_is_kept_and_its_run_refused(tmp_path: Path) -> None:
    from codefactory.dispatch.service import build_dispatch
    from codefactory.store.deliveries import DeliveryQueue
    from codefactory.web.app import create_app
    from tests.fixtures.webhooks.signed import headers
    from tests.integration.test_webhooks import labeled, post, sample_repo, settings_for

    factory = build_factory(settings_for(tmp_path, sample_repo(tmp_path)))
    dispatch = build_dispatch(factory, workers=0)
    app = create_app(factory, dispatch)
    with factory.store.atomic() as tx:
        HaltStore.raise_in(tx.session, reason="drill", raised_by="olive.ops", at=datetime.now(UTC))
    body = labeled()
    answer = post(app, "/webhooks/github", body, headers("github", body, event="issues"))
    dispatch.stop()
    assert answer.status_code == 202  # acknowledged: the delivery is stored
    run = factory.store.require_run(answer.json()["run_id"])
    assert run.state is RunState.REFUSED
    assert run.reason.startswith("halted by olive.ops at ") and run.reason.endswith(": drill")
    receipt = answer.json()
    stored = DeliveryQueue(factory.store.engine).get("github", receipt["delivery_id"])
    assert stored is not None and stored.run_id == run.id
    assert (stored.status, stored.reason) == ("refused", run.reason)
    factory.store.engine.dispose()


def test_the_halt_kills_the_marked_process_group_and_nothing_else() -> None:
    from codefactory.sandbox.halting import kill_marked

    mark = f"halt-mark-test-{os.getpid()}-{time.monotonic_ns()}"
    marked = subprocess.Popen(  # a session leader, as the supervisor starts bubblewrap
        ["/bin/sh", "-c", "/bin/sleep 60 & echo $!; wait", "sh", mark],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    other = subprocess.Popen(["/bin/sleep", "60"], start_new_session=True)
    try:
        assert marked.stdout is not None
        child = int(marked.stdout.readline())  # in the group, without the mark once exec'd
        deadline = time.monotonic() + 5
        while mark.encode() in Path(f"/proc/{child}/cmdline").read_bytes():
            assert time.monotonic() < deadline, "the shell's child never became sleep"
            time.sleep(0.01)  # until then it is a copy of the shell, mark and all
        assert kill_marked(mark.encode()) == 1
        assert marked.wait(5) == -9
        deadline = time.monotonic() + 5
        while Path(f"/proc/{child}").exists() and "Z" not in _state(child):
            assert time.monotonic() < deadline, "the group's other member outlived the kill"
            time.sleep(0.05)
        assert other.poll() is None  # another process group is left alone
    finally:
        other.kill()
        other.wait()
        marked.stdout.close()  # type: ignore[union-attr]


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "Z"


@sqlite_store_only  # PostgreSQL refuses text that is not UTF-8 when it is written
def test_a_lift_whose_event_cannot_be_recorded_is_refused_and_audited(
    factory: Factory, operators: Operators
) -> None:
    """The halt row edited by hand to hold a byte that is not UTF-8: lifting quotes its
    reason, an event RFC 8785 cannot record. The lift rolls back and is refused, audited
    after the authorization it consumed (as a lift that finds nothing to lift is); the halt
    stays in force."""
    olive = ("--as", "olive.ops", "--key", str(operators.olive.private))
    assert halt_cli(factory, operators, "--reason", "incident 7", *olive).returncode == 0
    with store_sql(factory.settings.data_dir) as db:
        db.execute("UPDATE halts SET reason = reason || CAST(X'ff' AS TEXT)")
    lifted = halt_cli(factory, operators, "--lift", "--reason", "rolled back", *olive)
    assert lifted.returncode == 1 and "Traceback" not in lifted.stderr
    assert "halt-lift refused: halt-lifted cannot be recorded" in " ".join(lifted.stderr.split())
    (refused,) = ledger(factory, "halt-refused")
    assert refused["action"] == "halt-lift" and "must be repaired" in str(refused["reason"])
    assert len(ledger(factory, "governance-authorized")) == 2  # the raise and this lift
    assert ledger(factory, "halt-lifted") == []
    assert HaltStore(factory.store.engine).active() is not None
