"""The loop's delegation wrappers on a real store and real tokens (runs/delegated.py): a
refused act raises before the wrapped port is called, an allowed one is audited and reaches it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from codefactory.domain import (
    Change,
    ChangeKind,
    ChangePackage,
    CheckResult,
    FileChange,
    Proposal,
    Run,
)
from codefactory.engines.session import EngineSession
from codefactory.identity import DelegationRefused
from codefactory.package.port import PackageContents
from codefactory.runs.delegated import DelegatedPackager, DelegatedSessions
from tests.integration.test_identity_registry import Governance, make_governance


class RecordingSessions:
    """An `EngineSessions` that opens recipe sessions and remembers each opening."""

    def __init__(self) -> None:
        self.opened: list[tuple[str, str, int]] = []

    def open(self, run: Run, engine: str, *, round_number: int) -> EngineSession:
        self.opened.append((run.id, engine, round_number))
        return EngineSession(run_id=run.id, round=round_number)

    def model_requests(self, run: Run) -> int:
        return 0

    def close(self, run: Run) -> None:
        return None


class RecordingPackager:
    """A `PackageBuilder` that remembers what it was asked to build and builds nothing."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.built: list[str] = []
        self.risks: list[ChangeKind] = []

    def build(self, contents: PackageContents) -> ChangePackage:
        self.built.append(contents.run.id)
        return ChangePackage(
            run_id=contents.run.id,
            directory=self.directory,
            branch=contents.branch,
            commit=contents.commit,
            risk_level="low",
            files=(),
        )

    def risk_level(self, change: Change, kind: ChangeKind, results: Sequence[CheckResult]) -> str:
        self.risks.append(kind)
        return "low"


@pytest.fixture
def governance(tmp_path: Path) -> Governance:
    return make_governance(tmp_path / "data")


def issue(governance: Governance, run: Run) -> None:
    agent = governance.identity.agents.require_active(run.agent_id)
    with governance.store.atomic() as tx:
        governance.identity.delegation.issue(run, agent, session=tx.session)


def checked(governance: Governance, run: Run) -> list[tuple[str, str, str]]:
    return [
        (e.name, e.data["action"], e.actor)
        for e in governance.audit.events(run.id)
        if e.name.startswith("delegation-") and e.name != "delegation-issued"
    ]


def sessions_of(governance: Governance, inner: RecordingSessions) -> DelegatedSessions:
    identity = governance.identity
    return DelegatedSessions(inner, agents=identity.agents, delegation=identity.delegation)


def contents_of(governance: Governance, run: Run) -> PackageContents:
    trigger = governance.store.get_trigger(run.trigger_id)
    assert trigger is not None
    change = Change(files=(FileChange(path="service/app.py", content=b"x = 1\n"),))
    return PackageContents(
        run=run,
        trigger=trigger,
        proposal=Proposal(engine="recipe:lint-fix", engine_version="1", rationale="lint"),
        results=(),
        rounds=1,
        patch="",
        commit="0" * 40,
        branch=f"factory/{run.id}",
        forge_repository="/srv/forge/sample-service.git",
        change=change,
    )


def test_no_session_opens_for_a_run_without_a_token(governance: Governance) -> None:
    run, inner = governance.new_run(), RecordingSessions()
    with pytest.raises(DelegationRefused) as refused:
        sessions_of(governance, inner).open(run, "recipe:lint-fix", round_number=1)
    assert refused.value.action == "engine:propose"
    assert str(refused.value).startswith(f"delegation refused for engine:propose in run {run.id}")
    assert inner.opened == []
    assert checked(governance, run) == [("delegation-refused", "engine:propose", "factory:engine")]


def test_a_session_opens_for_a_run_whose_token_allows_the_proposal(governance: Governance) -> None:
    run, inner = governance.new_run(), RecordingSessions()
    issue(governance, run)
    session = sessions_of(governance, inner).open(run, "recipe:lint-fix", round_number=1)
    assert session is not None and session.run_id == run.id
    assert inner.opened == [(run.id, "recipe:lint-fix", 1)]
    assert checked(governance, run) == [("delegation-checked", "engine:propose", "factory:engine")]


def test_a_revoked_token_stops_the_next_round(governance: Governance) -> None:
    run, inner = governance.new_run(), RecordingSessions()
    issue(governance, run)
    sessions = sessions_of(governance, inner)
    sessions.open(run, "recipe:lint-fix", round_number=1)
    token = governance.identity.delegation.token_for(run.id)
    assert token is not None
    governance.identity.delegation.revoke(token.jti, actor="user:security", reason="incident 9")
    with pytest.raises(DelegationRefused, match="incident 9"):
        sessions.open(run, "recipe:lint-fix", round_number=2)
    assert inner.opened == [(run.id, "recipe:lint-fix", 1)]


def test_no_package_is_built_for_a_run_without_a_token(
    governance: Governance, tmp_path: Path
) -> None:
    run, inner = governance.new_run(), RecordingPackager(tmp_path / "package")
    packager = DelegatedPackager(inner, delegation=governance.identity.delegation)
    with pytest.raises(DelegationRefused) as refused:
        packager.build(contents_of(governance, run))
    assert refused.value.action == "package:sign"
    assert inner.built == []
    assert checked(governance, run) == [("delegation-refused", "package:sign", "factory:package")]


def test_a_package_is_built_once_its_signing_is_checked_once_per_run(
    governance: Governance, tmp_path: Path
) -> None:
    run, inner = governance.new_run(), RecordingPackager(tmp_path / "package")
    issue(governance, run)
    packager = DelegatedPackager(inner, delegation=governance.identity.delegation)
    contents = contents_of(governance, run)
    assert packager.build(contents).run_id == run.id
    packager.build(contents)  # rebuilt after a stopped worker's folder was set aside
    assert inner.built == [run.id, run.id]
    assert checked(governance, run) == [("delegation-checked", "package:sign", "factory:package")]
    assert packager.risk_level(contents.change, run.kind, ()) == "low"  # no act, no check
    assert inner.risks == [run.kind]
    assert len(checked(governance, run)) == 1
