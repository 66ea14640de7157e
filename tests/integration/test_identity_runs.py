"""The governance ring on the real loop: identity, delegation, signed commits, provenance."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest
from rich.console import Console

from codefactory.audit.explain import explain_run, render_explanation
from codefactory.audit.merkle import verify_inclusion
from codefactory.config import Settings
from codefactory.demo import approve_signed
from codefactory.domain import CheckResult, Proposal, RunState, Task
from codefactory.engines.lint_fix import LintFixEngine
from codefactory.factory import Factory, build_factory, commit_verifier
from codefactory.identity import AgentStatus
from codefactory.identity.directory import FileDirectory
from codefactory.identity.published import allowed_signers
from codefactory.identity.statements import StatementVerifier
from codefactory.runs.tickets import accept_ticket
from codefactory.sandbox.port import Workspace
from tests.acceptance.conftest import TEMPLATE
from tests.conftest import data_dir_sharing_cache, sample_service
from tests.integration.signed_people import reviewer_directory

pytestmark = pytest.mark.usefixtures("bwrap_available")
LINT_TICKET = (TEMPLATE / "tickets" / "SVC-102.json").read_bytes()


def factory_at(tmp_path: Path, uv_cache: Path, **settings: str) -> Factory:
    data_dir = data_dir_sharing_cache(tmp_path / "data", uv_cache)
    return build_factory(Settings(data_dir=data_dir, **settings))  # type: ignore[arg-type]


@pytest.fixture
def factory(tmp_path: Path, uv_cache: Path) -> Factory:
    return factory_at(tmp_path, uv_cache)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return sample_service(tmp_path / "sample-service")


def names(factory: Factory, run_id: str) -> list[str]:
    return [record.name for record in factory.audit.events(run_id)]


def git(bare: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(bare), *args], capture_output=True, text=True, check=True
    ).stdout


def test_a_run_acts_under_its_delegation_signs_its_commit_and_its_provenance(
    factory: Factory, repo: Path, tmp_path: Path
) -> None:
    run = accept_ticket(factory, payload=LINT_TICKET, repo=repo)
    assert run.state is RunState.IN_REVIEW, run.reason
    events = factory.audit.events(run.id)
    checks = [(e.data["action"], e.actor) for e in events if e.name == "delegation-checked"]
    assert checks == [
        ("engine:propose", "factory:engine"),
        ("forge:commit", "factory:forge"),
        ("package:sign", "factory:package"),
    ]
    issued = next(e for e in events if e.name == "delegation-issued")
    assert issued.data["claims"]["act"] == {"sub": run.agent_id}
    # The commit: signed by the agent's own key, trailers pointing into the audit log.
    bare = factory.loop.forge.repository_path(run.repository)
    signers = tmp_path / "allowed_signers"
    signers.write_text(allowed_signers(factory.identity.agents.search()))
    git(bare, "-c", f"gpg.ssh.allowedSignersFile={signers}", "verify-commit", run.head_commit)
    message = git(bare, "log", "-1", "--format=%B", run.head_commit)
    trailers = dict(re.findall(r"^([A-Za-z-]+): (.+)$", message, re.MULTILINE))
    assert trailers["Agent-Id"] == run.agent_id and trailers["On-Behalf-Of"] == run.sponsor
    assert trailers["Run-Id"] == run.id
    requested = events[[e.seq for e in events].index(int(trailers["Audit-Index"]))]
    assert requested.name == "commit-requested" and requested.data["branch"] == run.branch
    # Provenance in the package, by the same key; a checkpoint signed when the run came to rest.
    envelope = json.loads((Path(run.package_dir) / "provenance.dsse.json").read_text())
    kid = factory.identity.agent_keys.public(run.agent_id).kid
    assert envelope["signatures"][0]["keyid"] == kid
    signed = factory.audit.checkpoint()
    assert signed.checkpoint.size == len(factory.audit.events())
    for event in events:
        proof = factory.audit.inclusion_proof(event.seq, signed.checkpoint.size)
        verify_inclusion(
            event.seq, proof.size, proof.leaf_hash, proof.hashes, signed.checkpoint.root
        )
    # `audit explain` answers with proofs, as data and as text.
    explanation = explain_run(factory, run.id, commits=commit_verifier(factory.settings))
    assert explanation is not None
    assert explanation["delegation"]["token"] == factory.identity.delegation.token_for(run.id).token  # type: ignore[union-attr]
    assert explanation["commit"]["signature"]["good"] is True
    assert explanation["provenance"]["verified"] is True
    assert [p["index"] for p in explanation["proofs"]] == [e.seq for e in events]
    assert all(p["verified"] for p in explanation["proofs"])
    console = Console(record=True, width=200)
    render_explanation(console, explanation)
    text = console.export_text()
    assert f"agent:      {run.agent_id}" in text and "good, signed by agent-" in text
    assert "NOT PROVED" not in text and "provenance: " in text
    # Revoked while in review: the hand-off is refused and the run ends failed.
    jti = issued.data["jti"]
    factory.identity.delegation.revoke(jti, actor="user:security", reason="incident 7")
    directory, key = reviewer_directory(tmp_path / "people")
    factory.review.statements = StatementVerifier(FileDirectory(directory))
    ended = approve_signed(factory, run.id, key)
    assert ended.state is RunState.FAILED
    assert f"not handed off: delegation refused for review:hand-off in run {run.id}" in ended.reason
    assert "revoked" in ended.reason and "incident 7" in ended.reason
    assert names(factory, run.id)[-2:] == ["delegation-refused", "run-state-changed"]
    assert factory.audit.verify().ok


def test_a_suspended_agent_never_starts_a_run(factory: Factory, repo: Path) -> None:
    agents = factory.identity.agents
    agent = agents.require_active(factory.settings.agent_id)
    agents.set_status(agent.id, AgentStatus.SUSPENDED, actor="user:security", reason="review")
    run = accept_ticket(factory, payload=LINT_TICKET, repo=repo)
    assert run.state is RunState.REFUSED
    assert run.reason == f"agent {agent.id} is suspended and may not start runs"
    assert names(factory, run.id) == ["run-created", "agent-refused", "run-state-changed"]
    assert factory.identity.delegation.token_for(run.id) is None
    assert not list(factory.settings.workspaces_dir.glob("*"))  # never provisioned


def test_an_expired_token_stops_the_engine(factory: Factory, repo: Path) -> None:
    factory.identity.delegation.ttl_s = 0  # expires as it is issued
    run = accept_ticket(factory, payload=LINT_TICKET, repo=repo)
    assert run.state is RunState.FAILED
    assert run.reason.startswith(f"delegation refused for engine:propose in run {run.id}: ")
    assert "expired at" in run.reason
    assert "engine-proposed" not in names(factory, run.id)


class ReadmeEngine:
    """Fixes lint and also rewrites the README: allowed by policy, not by a lint delegation."""

    name = "recipe:lint-and-docs"
    version = "0"

    def propose(
        self,
        task: Task,
        workspace: Workspace,
        feedback: Sequence[CheckResult],
        session: object = None,
    ) -> Proposal:
        proposal = LintFixEngine().propose(task, workspace, feedback)
        workspace.write_file("README.md", b"# sample service\n\nNow with fewer lint findings.\n")
        return Proposal(engine=self.name, engine_version="0", rationale=proposal.rationale)


def test_a_change_outside_the_delegated_paths_is_never_committed(
    factory: Factory, repo: Path
) -> None:
    factory.loop.engines = {"recipe:lint-fix": ReadmeEngine()}
    run = accept_ticket(factory, payload=LINT_TICKET, repo=repo)
    assert run.state is RunState.FAILED, run.reason
    assert run.reason.endswith("outside the delegated paths: README.md")
    assert "commit-requested" not in names(factory, run.id)
    assert factory.loop.forge.branch_head(run.repository, f"factory/{run.id}") is None


def test_an_agent_runs_only_its_engines(
    tmp_path: Path, uv_cache: Path, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.directory_helpers import DIRECTORY_ENV
    from tests.integration.governed import admins_directory, signed

    directory, keys = admins_directory(tmp_path / "people", "security", "sec")
    monkeypatch.setenv(DIRECTORY_ENV, str(directory))  # an active agent needs sec's signature
    factory = factory_at(tmp_path, uv_cache, agent_id="agent:llm-only")
    said = signed(
        factory.identity.directory, "sec", keys["sec"], "agent-activate", "agent:llm-only"
    )
    factory.identity.agents.create(
        "agent:llm-only", display_name="LLM", owner="dana", engines=["llm:*"], actor="user:sec",
        statement=said,
    )  # fmt: skip
    run = accept_ticket(factory, payload=LINT_TICKET, repo=repo)
    assert run.state is RunState.FAILED
    assert run.reason == "agent agent:llm-only may not use the engine recipe:lint-fix"
