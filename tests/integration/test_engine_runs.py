"""Language-model engines through the whole loop: ticket → registry → policy → sandbox →
the in-harness agent → the model gateway (TLS) → the replay upstream → verify → package.

Every test runs the real factory (SQLite, bubblewrap, Cedar, the local forge) with the
gateway's upstream set to a transcript; only the source of the model's tokens is recorded.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from codefactory.config import Settings
from codefactory.demo import DEMO_TRANSCRIPT
from codefactory.domain import CheckResult, Proposal, RunState, Task
from codefactory.engines.cli import cli_engine
from codefactory.engines.session import EngineSession
from codefactory.engines.settings import EngineSettings, GatewaySettings
from codefactory.factory import Factory, build_factory
from codefactory.identity import AgentStatus
from codefactory.identity.four_eyes import GovernedFile
from codefactory.identity.statements import StatementVerifier
from codefactory.runs.replay import ReplayImpossible, replay_run, verify_cassette
from codefactory.runs.report import run_report
from codefactory.runs.tickets import accept_ticket
from codefactory.sandbox.port import Workspace
from tests.acceptance.conftest import TEMPLATE
from tests.conftest import data_dir_sharing_cache, sample_service
from tests.directory_helpers import DIRECTORY_ENV
from tests.integration.governed import admins_directory, change

pytestmark = pytest.mark.usefixtures("bwrap_available")

REGISTRY = TEMPLATE.parent / "engines" / "registry.toml"
BUG = (TEMPLATE / "tickets" / "SVC-104.json").read_bytes()


def ticket(summary: str = "", labels: tuple[str, ...] = ("bug",)) -> bytes:
    document = json.loads(BUG)
    document["fields"]["labels"] = list(labels)
    if summary:
        document["fields"]["summary"] = summary
    return json.dumps(document).encode()


def script(tmp_path: Path, steps: list[dict[str, Any]], **extra: Any) -> Path:
    path = tmp_path / "script.json"
    body = {"engine": "agent:pydantic-ai", "model": "gpt-4.1-mini", "steps": steps, **extra}
    path.write_text(json.dumps(body))
    return path


def factory_for(
    tmp_path: Path,
    uv_cache: Path,
    upstream: str,
    registry: Path = REGISTRY,
    *,
    strict: bool = False,
) -> Factory:
    data_dir = tmp_path / "data"
    if not data_dir.exists():  # a second factory on the same data folder shares everything
        data_dir_sharing_cache(data_dir, uv_cache)
    settings = Settings(
        data_dir=data_dir,
        gateway=GatewaySettings(upstream=upstream, replay_strict=strict),
        engines=EngineSettings(registry=registry),
    )
    return build_factory(settings)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return sample_service(tmp_path / "sample-service")


def names(factory: Factory, run_id: str) -> list[str]:
    return [event.name for event in factory.audit.events(run_id)]


def test_a_bug_ticket_is_fixed_in_two_rounds_and_replays_to_the_same_diff(
    tmp_path: Path, uv_cache: Path, repo: Path
) -> None:
    factory = factory_for(tmp_path, uv_cache, f"replay:{DEMO_TRANSCRIPT}")
    run = accept_ticket(factory, payload=BUG, repo=repo)
    assert run.state is RunState.IN_REVIEW, run.reason
    assert run.engine == "agent:pydantic-ai"
    report = run_report(factory.store, run.id)
    assert report is not None
    traffic = report["model_traffic"]
    assert traffic["requests"] == 8 and traffic["refused"] == 0
    assert traffic["models"] == ["gpt-4.1-mini"] and traffic["cost_usd"] > 0
    assert report["tool_calls"]["by_tool"] == {
        "read_file": 2,
        "edit_file": 3,
        "run": 1,
        "finish": 2,
    }
    assert {host["host"] for host in report["egress"] if not host["allowed"]} == set()
    events = names(factory, run.id)
    assert events.count("model-called") == 8 and "engine-spend" in events
    calls = [e.data for e in factory.audit.events(run.id) if e.name == "model-called"]
    assert all(re.fullmatch(r"[0-9a-f]{64}", c["response_sha256"]) for c in calls)
    assert all(c["sponsor"] == "priya.shah" and c["engine"] == "agent:pydantic-ai" for c in calls)
    evidence = factory.settings.data_dir / "evidence" / run.id
    assert (evidence / "round-1" / "engine" / "agent-messages-round-1.json").is_file()
    assert (evidence / "round-2" / "engine" / "agent-messages-round-2.json").is_file()
    cassette = factory.settings.model_traffic_dir / f"{run.id}.yaml"
    assert verify_cassette(factory.store, run, cassette) == 8
    conversation = evidence / "round-2" / "engine" / "agent-messages-round-2.json"
    assert conversation.stat().st_mode & 0o777 == 0o600

    replaying = factory_for(tmp_path, uv_cache, f"replay:{cassette}")
    replayed = replay_run(replaying.loop, run)
    assert replayed.error == ""
    assert replayed.same_diff and replayed.same_checks
    assert [r.checks["tests"] for r in replayed.replayed_checks] == [False, True]

    tampered = tmp_path / "tampered.yaml"
    document = yaml.safe_load(cassette.read_text())
    body = document["interactions"][3]["response"]["body"]
    body["string"] = body["string"].replace("443", "8443")
    tampered.write_text(yaml.safe_dump(document))
    with pytest.raises(ReplayImpossible, match="altered"):
        verify_cassette(factory.store, run, tampered)
    document = yaml.safe_load(cassette.read_text())
    document["interactions"][1]["response"]["status"]["code"] = 500
    tampered.write_text(yaml.safe_dump(document))
    with pytest.raises(ReplayImpossible, match="exchange 2 .* altered"):
        verify_cassette(factory.store, run, tampered)
    copy = tmp_path / "verified.yaml"
    assert verify_cassette(factory.store, run, cassette, copy_to=copy) == 8
    assert copy.read_bytes() == cassette.read_bytes()

    # The engine runs again, so it must be cleared now: not past its registry review, and
    # its agent still active. Refused before any workspace, audited under the replay's id.
    workspaces = sorted(replaying.settings.workspaces_dir.glob("*"))
    # What the run was is its run-created event's: a row edited to another agent or engine
    # (to one that is still cleared) is refused.
    for edited in (dataclasses.replace(run, agent_id="agent:other"),
                   dataclasses.replace(run, engine="cli:codex")):  # fmt: skip
        with pytest.raises(ReplayImpossible, match="edited outside the factory"):
            replay_run(replaying.loop, edited)
    after_review = datetime(2027, 7, 1, 9, tzinfo=UTC)  # the entry's next_review: 2027-06-30
    with pytest.raises(ReplayImpossible, match=r"may not run now: .*due 2027-06-30"):
        replay_run(replaying.loop, run, now=after_review)
    replaying.identity.agents.set_status(
        run.agent_id, AgentStatus.SUSPENDED, actor="user:security", reason="incident 9"
    )
    with pytest.raises(ReplayImpossible, match=f"agent {run.agent_id} is suspended"):
        replay_run(replaying.loop, run)
    assert sorted(replaying.settings.workspaces_dir.glob("*")) == workspaces
    refused = [e.name for e in factory.audit.events() if e.run_id.startswith(f"{run.id}-replay-")]
    assert refused.count("engine-refused") == 1 and refused.count("agent-refused") == 1
    assert "agent-refused" not in names(factory, run.id)


def test_a_looping_engine_is_stopped_by_its_budget(
    tmp_path: Path, uv_cache: Path, repo: Path
) -> None:
    looping = script(
        tmp_path,
        [
            {
                "tool": {"name": "read_file", "arguments": {"path": "README.md"}},
                "usage": {"input_tokens": 20000, "output_tokens": 50},
            }
        ],
        repeat_last=True,
    )
    factory = factory_for(tmp_path, uv_cache, f"replay:{looping}")
    run = accept_ticket(factory, payload=ticket(), repo=repo)
    assert run.state is RunState.FAILED
    assert "budget" in run.reason.lower(), run.reason
    spend = [e.data for e in factory.audit.events(run.id) if e.name == "engine-spend"]
    assert spend and spend[0]["input_tokens"] <= 400_000 + 20_000
    assert not any(factory.settings.workspaces_dir.iterdir())


@pytest.mark.parametrize(
    ("engine", "reason"),
    [
        ("cli:aider", "not cleared"),
        ("agent:unknown", "not in the engine registry"),
        ("recipe:lint-fix", "not approved for general_change"),
    ],
)
def test_an_engine_the_registry_has_not_cleared_is_refused_before_anything_starts(
    tmp_path: Path, uv_cache: Path, repo: Path, engine: str, reason: str
) -> None:
    factory = factory_for(tmp_path, uv_cache, f"replay:{DEMO_TRANSCRIPT}")
    run = accept_ticket(factory, payload=BUG, repo=repo, engine=engine)
    assert run.state is RunState.REFUSED
    assert reason in run.reason, run.reason
    assert [s.state for s in run.history] == [RunState.RECEIVED, RunState.REFUSED]
    assert "engine-refused" in names(factory, run.id)
    assert not (factory.settings.model_traffic_dir / f"{run.id}.yaml").exists()


def test_an_expired_registry_entry_is_refused_and_a_registry_change_is_audited(
    tmp_path: Path, uv_cache: Path, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory, keys = admins_directory(tmp_path / "people", "registry-admin", "rita", "ravi")
    monkeypatch.setenv(DIRECTORY_ENV, str(directory))
    expired = tmp_path / "registry.toml"
    expired.write_text(
        REGISTRY.read_text().replace("next_review = 2027-06-30", "next_review = 2026-01-31")
    )
    factory = factory_for(tmp_path, uv_cache, f"replay:{DEMO_TRANSCRIPT}", registry=expired)
    run = accept_ticket(factory, payload=BUG, repo=repo)
    assert run.state is RunState.REFUSED and "2026-01-31" in run.reason, run.reason
    changed = [e for e in factory.audit.events() if e.name == "engine-registry-changed"]
    assert len(changed) == 1  # first load: every entry recorded as added
    factory_for(tmp_path, uv_cache, f"replay:{DEMO_TRANSCRIPT}", registry=REGISTRY)
    changes = [e for e in factory.audit.events() if e.name == "engine-registry-changed"]
    assert len(changes) == 1  # four eyes: a changed file is not in force until approved
    verifier = StatementVerifier(factory.identity.directory)  # two registry-admins, signed
    ledger = GovernedFile("registry", factory.audit, verifier)
    change(ledger, REGISTRY.read_text(), proposer=("rita", keys["rita"]),
           approver=("ravi", keys["ravi"]))  # fmt: skip
    factory_for(tmp_path, uv_cache, f"replay:{DEMO_TRANSCRIPT}", registry=REGISTRY)
    changes = [e for e in factory.audit.events() if e.name == "engine-registry-changed"]
    assert len(changes) == 2
    assert {c["change"] for c in changes[-1].data["changes"]} == {"changed"}
    assert all("next_review" in c["fields"] for c in changes[-1].data["changes"])


RENAME_TO_PIPELINE = (
    "diff --git a/README.md b/.gitlab-ci.yml\nsimilarity index 100%\n"
    "rename from README.md\nrename to .gitlab-ci.yml\n"
)


def test_a_tool_call_policy_forbids_is_refused_audited_and_not_executed(
    tmp_path: Path, uv_cache: Path, repo: Path
) -> None:
    steps = [
        {
            "tool": {
                "name": "edit_file",
                "arguments": {
                    "path": "./.gitlab-ci.yml",
                    "old": "",
                    "new": "test:\n  script: [echo skipped]\n",
                },
            }
        },
        {
            "tool": {
                "name": "edit_file",
                "arguments": {
                    "path": "README.md",
                    "old": "# sample-service",
                    "new": "# sample-service (docs)",
                },
            }
        },
        {"tool": {"name": "apply_patch", "arguments": {"patch": RENAME_TO_PIPELINE}}},
        {"tool": {"name": "finish", "arguments": {"summary": "README touched; CI edit refused"}}},
        {"text": "done"},
    ]
    factory = factory_for(tmp_path, uv_cache, f"replay:{script(tmp_path, steps)}")
    run = accept_ticket(factory, payload=ticket(), repo=repo)
    assert run.state is RunState.IN_REVIEW, run.reason
    calls = [e.data for e in factory.audit.events(run.id) if e.name == "tool-called"]
    refused = [c for c in calls if not c["allowed"]]
    assert [c["tool"] for c in refused] == ["edit_file", "apply_patch"]
    assert refused[0]["policy_ids"] == ["engines-never-edit-pipelines"]
    assert "CI" in refused[0]["reason"]
    package = Path(run.package_dir)
    patch = (package / "change.patch").read_text()
    assert ".gitlab-ci.yml" not in patch and "sample-service (docs)" in patch


def test_no_model_upstream_fails_the_run_with_that_reason(
    tmp_path: Path, uv_cache: Path, repo: Path
) -> None:
    factory = factory_for(tmp_path, uv_cache, "")
    run = accept_ticket(factory, payload=BUG, repo=repo)
    assert run.state is RunState.FAILED
    assert "CODEFACTORY_GATEWAY__UPSTREAM" in run.reason or "upstream" in run.reason, run.reason
    outcomes = [e.data["outcome"] for e in factory.audit.events(run.id) if e.name == "model-called"]
    assert outcomes and set(outcomes) == {"no-upstream"}


CODEX_FIX = {
    "engine": "cli:codex",
    "model": "gpt-5",
    "steps": [
        {"tool": {"name": "exec_command", "arguments": {"cmd": "cat service/callbacks.py"}}},
        {
            "tool": {
                "name": "exec_command",
                "arguments": {
                    "cmd": 'sed -i \'s/    if parts.scheme != "https" or not parts.hostname:/'
                    '    if parts.scheme != "https" or not parts.hostname or '
                    'parts.netloc.rsplit(":", 1)[-1] not in (parts.hostname, "443"):/\' '
                    "service/callbacks.py"
                },
            }
        },
        {"text": "callback_allowed now refuses any explicit port but 443."},
    ],
}


@pytest.mark.engines_cli
@pytest.mark.timeout(900)
def test_an_agent_cli_takes_the_ticket_inside_the_sandbox_and_its_side_traffic_is_denied(
    tmp_path: Path, uv_cache: Path, repo: Path
) -> None:
    transcript = tmp_path / "codex.json"
    transcript.write_text(json.dumps(CODEX_FIX))
    factory = factory_for(tmp_path, uv_cache, f"replay:{transcript}")
    # the engine images the CLI tests build once per machine (hundreds of MB)
    factory.loop.engines["cli:codex"] = cli_engine(
        "cli:codex", Path.home() / ".cache" / "codefactory-tests"
    )
    run = accept_ticket(factory, payload=BUG, repo=repo, engine="cli:codex")
    assert run.state is RunState.IN_REVIEW, run.reason
    assert run.engine == "cli:codex"
    report = run_report(factory.store, run.id)
    assert report is not None
    assert report["model_traffic"]["requests"] >= 3
    assert report["model_traffic"]["models"] == ["gpt-5"]
    denied = {h["host"] for h in report["egress"] if not h["allowed"]}
    assert denied == {"github.com:443", "api.github.com:443", "chatgpt.com:443"}
    assert all(h["phases"] == ["engine"] for h in report["egress"] if not h["allowed"])
    gateway = [h for h in report["egress"] if h["allowed"] and h["phases"] == ["engine"]]
    assert [h["host"].split(":")[0] for h in gateway] == ["gateway.codefactory.internal"]
    evidence = factory.settings.data_dir / "evidence" / run.id / "round-1" / "engine"
    assert any(evidence.iterdir())
    patch = (Path(run.package_dir) / "change.patch").read_text()
    assert 'not in (parts.hostname, "443")' in patch


def test_in_strict_replay_a_tool_result_that_differs_from_the_transcript_fails_the_run(
    tmp_path: Path, uv_cache: Path, repo: Path
) -> None:
    steps = [
        {
            "tool": {"name": "read_file", "arguments": {"path": "service/callbacks.py"}},
            "expect_result": "def callback_refused(",
        },
        {"tool": {"name": "finish", "arguments": {"summary": "nothing"}}},
        {"text": "done"},
    ]
    factory = factory_for(tmp_path, uv_cache, f"replay:{script(tmp_path, steps)}", strict=True)
    run = accept_ticket(factory, payload=ticket(), repo=repo)
    assert run.state is RunState.FAILED
    assert "409" in run.reason or "mismatch" in run.reason, run.reason
    statuses = [e.data["status"] for e in factory.audit.events(run.id) if e.name == "model-called"]
    assert 409 in statuses


class ModelFreeEngine:
    """Stands in for a CLI whose repository configuration replaced the model: it changes
    the workspace without a single call through the gateway."""

    name = "agent:pydantic-ai"
    version = "0"

    def propose(
        self,
        task: Task,
        workspace: Workspace,
        feedback: Sequence[CheckResult],
        session: EngineSession | None = None,
    ) -> Proposal:
        assert session is not None and session.model is not None  # it had model access
        workspace.write_file("README.md", b"# sample-service\n\nchanged without a model\n")
        return Proposal(engine=self.name, engine_version="0", rationale="no model was asked")


def test_a_change_made_without_a_model_call_through_the_gateway_is_not_accepted(
    tmp_path: Path, uv_cache: Path, repo: Path
) -> None:
    factory = factory_for(tmp_path, uv_cache, f"replay:{DEMO_TRANSCRIPT}")
    factory.loop.engines["agent:pydantic-ai"] = ModelFreeEngine()
    run = accept_ticket(factory, payload=BUG, repo=repo)
    assert run.state is RunState.FAILED
    assert "without a single model call through the gateway" in run.reason
    assert "engine-without-model" in names(factory, run.id)
