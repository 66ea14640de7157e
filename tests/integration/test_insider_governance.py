"""An insider who can write the data folder (not the directory, the keys or the witnesses)
appends governance events or edits rows; none of it grants authority, because authority is
read back only with its signed statement, re-checked against the directory (red team
2026-11-30, F1 and F4)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from codefactory.audit.sql import SqlAuditLog
from codefactory.cli import app
from codefactory.domain import UnknownEvent
from codefactory.identity.four_eyes import content_digest
from tests.directory_helpers import DIRECTORY_ENV
from tests.integration.signed_people import People, people
from tests.store_sql import store_engine, store_sql

Cli = Callable[..., str]
PERMIT_ALL = (
    '@id("insider-permit-all")\n@reason("anything goes")\npermit(principal, action, resource);\n'
)
LINT = ("policy", "check", "--source", "jira", "--action", "fix_lint", "--json",
        "--context", '{"sponsor": "priya.shah"}')  # fmt: skip
CI = ("policy", "check", "--source", "jira", "--action", "modify_ci", "--json",
      "--context", '{"sponsor": "priya.shah"}')  # fmt: skip


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Cli, People, Path]:
    found = people(tmp_path)
    monkeypatch.setenv(DIRECTORY_ENV, str(found.directory))
    runner = CliRunner()

    def invoke(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, ["--data-dir", str(tmp_path / "data"), *args])
        assert result.exit_code == code, (args, result.output)
        return result.stdout if "--json" in args else result.output

    return invoke, found, tmp_path


def key(found: People, name: str) -> str:
    return str(found.keys[name].private)


def forge(tmp_path: Path, name: str, actor: str, **data: object) -> int:
    """What /tmp/rt-insider/forge_*.py do: append straight to the log, no key, no signer."""
    engine = store_engine(tmp_path / "data")
    event = UnknownEvent(kind=name, actor=actor, run_id="governance", payload=data,
                       at=datetime.now(UTC))  # fmt: skip
    return SqlAuditLog(engine).append(event)


def events(tmp_path: Path, name: str) -> list[dict[str, object]]:
    with store_sql(tmp_path / "data") as db:
        rows = db.execute("select data from audit_events where name = ? order by seq", (name,))
        return [json.loads(data) for (data,) in rows]


def test_a_forged_approval_a_second_adoption_and_a_forged_proposal_change_nothing(
    world: tuple[Cli, People, Path],
) -> None:
    cli, found, tmp_path = world
    assert json.loads(cli(*CI, code=1))["allowed"] is False  # adopted: CI changes refused
    digest = content_digest(PERMIT_ALL)
    seq = forge(tmp_path, "policy-approved", "user:quinn", digest=digest, source="forged",
                content=PERMIT_ALL, proposer="pat", approver="quinn",
                statement_digest="sha256:" + "0" * 64)  # fmt: skip
    assert json.loads(cli(*CI, code=1))["allowed"] is False
    status = cli("policy", "status")
    assert f"an unverifiable policy-approved event at seq {seq} was ignored" in status
    cli("policy", "status")
    ignored = events(tmp_path, "governance-event-ignored")
    assert [event["seq"] for event in ignored] == [seq]  # audited once per event
    # a second adoption, after runs could exist: nothing
    later = forge(tmp_path, "policy-adopted", "installer", digest=digest, source="forged",
                  content=PERMIT_ALL)  # fmt: skip
    assert json.loads(cli(*CI, code=1))["allowed"] is False
    assert f"policy-adopted event at seq {later} was ignored" in cli("policy", "status")
    # a proposal "by quinn" the insider wrote, approved by the one real admin pat: refused
    proposal = forge(tmp_path, "policy-proposed", "user:quinn", digest=digest, source="forged",
                     content=PERMIT_ALL, proposer="quinn",
                     statement_digest="sha256:" + "1" * 64)  # fmt: skip
    refused = cli("policy", "approve", digest, "--as", "pat", "--key", key(found, "pat"), code=1)
    assert f"no policy proposal has the digest {digest}" in refused
    assert json.loads(cli("policy", "status", "--json"))["proposals"] == []
    assert f"policy-proposed event at seq {proposal} was ignored" in cli("policy", "status")
    assert json.loads(cli(*CI, code=1))["allowed"] is False


def test_only_a_verified_approval_counts_and_a_replayed_one_does_not_roll_back(
    world: tuple[Cli, People, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cli, found, tmp_path = world
    first = tmp_path / "permit.cedar"
    first.write_text(PERMIT_ALL)
    cli("policy", "status")  # adopts the default
    monkeypatch.setenv("CODEFACTORY_POLICY_FILE", str(first))
    cli("policy", "propose", "--as", "pat", "--key", key(found, "pat"))
    cli("policy", "approve", content_digest(PERMIT_ALL), "--as", "quinn",
        "--key", key(found, "quinn"))  # fmt: skip
    assert json.loads(cli(*CI))["allowed"] is True
    (approved,) = events(tmp_path, "policy-approved")
    assert approved["statement"] and approved["proposal_statement"]  # both kept, checkable
    second = tmp_path / "deny.cedar"
    second.write_text(PERMIT_ALL + '@id("no-ci")\n@reason("paused")\n'
                      'forbid(principal, action == Action::"modify_ci", resource);\n')  # fmt: skip
    monkeypatch.setenv("CODEFACTORY_POLICY_FILE", str(second))
    cli("policy", "propose", "--as", "quinn", "--key", key(found, "quinn"))
    cli("policy", "approve", content_digest(second.read_text()), "--as", "pat",
        "--key", key(found, "pat"))  # fmt: skip
    assert json.loads(cli(*CI, code=1))["allowed"] is False
    # the insider appends the earlier, genuine approval again: older, and a replay
    seq = forge(tmp_path, "policy-approved", "user:quinn", **approved)
    assert json.loads(cli(*CI, code=1))["allowed"] is False
    assert f"policy-approved event at seq {seq} was ignored: its statements were used" in cli(
        "policy", "status"
    )
    # a genuine approval statement with someone else's content: the digest gives it away
    tampered = {**approved, "content": PERMIT_ALL + "// more\n"}
    seq = forge(tmp_path, "policy-approved", "user:quinn", **tampered)
    assert f"seq {seq} was ignored: its content does not match" in cli("policy", "status")


def test_an_agent_revived_in_the_database_stays_unavailable_and_is_audited(
    world: tuple[Cli, People, Path],
) -> None:
    from codefactory.config import Settings
    from codefactory.factory import build_factory
    from codefactory.identity.errors import AgentUnavailable

    cli, found, tmp_path = world
    sam = ("--as", "sam", "--key", key(found, "sam"))
    cli("agents", "create", "agent:bot", "--owner", "dana", *sam)
    cli("agents", "suspend", "agent:bot", "--reason", "incident 7", *sam)
    # what /tmp/rt-insider/revive_agent.sh does, plus the creation's genuine statement
    # copied into an activation (a replay) and an unsigned activation
    with store_sql(tmp_path / "data") as db:
        db.execute("update agents set status='active', status_reason='' where id='agent:bot'")
    (created,) = events(tmp_path, "agent-created")
    forge(tmp_path, "agent-activated", "user:sam", **{**created, "previous": "suspended"})
    forge(tmp_path, "agent-activated", "user:sam", agent_id="agent:bot", status="active")
    agents = build_factory(Settings(data_dir=tmp_path / "data")).identity.agents
    disputed = "disputed: its row says active but its signed governance events say suspended"
    for _ in range(2):
        with pytest.raises(AgentUnavailable, match=disputed):
            agents.require_active("agent:bot")
    (audited,) = events(tmp_path, "agent-status-disputed")
    assert (audited["row_status"], audited["signed_status"]) == ("active", "suspended")
    assert any("replay" in line for line in audited["ignored"])  # type: ignore[union-attr]
    assert any("no signed statement" in line for line in audited["ignored"])  # type: ignore[union-attr]
    # a genuine, signed reactivation makes it available again
    cli("agents", "activate", "agent:bot", "--reason", "incident closed", *sam, code=1)
    with store_sql(tmp_path / "data") as db:
        db.execute("update agents set status='suspended' where id='agent:bot'")
    cli("agents", "activate", "agent:bot", "--reason", "incident 7 closed", *sam)
    assert agents.require_active("agent:bot").id == "agent:bot"
    # a suspension without a statement (recorded before statements were kept) still counts:
    # it only takes authority away
    from codefactory.identity import AgentStatus

    agents.set_status("agent:bot", AgentStatus.SUSPENDED, actor="user:sam")
    with store_sql(tmp_path / "data") as db:
        db.execute("update agents set status='active' where id='agent:bot'")
    with pytest.raises(AgentUnavailable, match=disputed):
        agents.require_active("agent:bot")


def test_an_adoption_after_runs_existed_is_refused_and_counts_for_nothing(
    world: tuple[Cli, People, Path],
) -> None:
    from codefactory.config import Settings
    from codefactory.factory import build_factory
    from codefactory.identity.four_eyes import FourEyesRefused, GovernedFile
    from codefactory.identity.statements import StatementVerifier

    _, _, tmp_path = world
    factory = build_factory(Settings(data_dir=tmp_path / "data"))
    factory.audit.append(UnknownEvent(kind="run-created", actor="factory", run_id="r-1", payload={},
                                    at=datetime.now(UTC)))  # fmt: skip
    ledger = GovernedFile("testkind", factory.audit, StatementVerifier(factory.identity.directory))
    with pytest.raises(FourEyesRefused, match="no testkind was ever adopted and runs exist"):
        ledger.state("v1", source="f")
    ledger._append("testkind-adopted", "installer", digest=content_digest("v1"), content="v1")
    with pytest.raises(FourEyesRefused, match="no trusted testkind .* made after runs existed"):
        ledger.state("v1", source="f")
