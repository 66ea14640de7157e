"""Governance through the CLI in process: each act needs a statement signed with the person's
own SSH key (real ssh-keygen keys made in tmp_path) by someone with the role; policy and
engine registry changes take effect only after a second person approves them."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from codefactory.cli import app
from codefactory.config import Settings
from codefactory.factory import build_factory
from codefactory.policy.cedar import default_policy_path
from tests.directory_helpers import DIRECTORY_ENV
from tests.integration.signed_people import People, factory_for, people, run_in_review

Cli = Callable[..., str]


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


def ssh_sign(private: str, namespace: str, statement: Path) -> None:
    """What a person does on their own machine: `ssh-keygen -Y sign`."""
    args = ["ssh-keygen", "-Y", "sign", "-f", private, "-n", namespace, str(statement)]
    subprocess.run(args, check=True, capture_output=True)


def ledger(tmp_path: Path, name: str) -> list[dict[str, object]]:
    factory = build_factory(Settings(data_dir=tmp_path / "data"))
    return [r.data for r in factory.audit.events("governance") if r.name == name]


def test_agent_governance_needs_a_signed_statement_by_security(
    world: tuple[Cli, People, Path],
) -> None:
    cli, found, tmp_path = world
    assert "a name alone proves nothing" in cli(
        "agents", "create", "agent:bot", "--owner", "dana", "--as", "sam", code=1
    )
    cli(
        "agents",
        "create",
        "agent:bot",
        "--owner",
        "dana",
        "--as",
        "sam",
        "--key",
        key(found, "sam"),
    )
    bare = cli("agents", "suspend", "agent:bot", "--as", "sam", code=1)
    assert "a name alone proves nothing" in bare and "ssh-keygen -Y sign" in bare
    refused = cli("agents", "suspend", "agent:bot", "--as", "dana", "--key", key(found, "dana"),
                  code=1)  # fmt: skip
    assert "does not hold the role 'security'" in refused
    stolen = cli("agents", "suspend", "agent:bot", "--as", "sam", "--key", key(found, "dana"),
                 code=1)  # fmt: skip
    assert "a key of dana, not of sam" in stolen
    suspended = json.loads(
        cli("agents", "suspend", "agent:bot", "--as", "Sam", "--key", key(found, "sam"),
            "--reason", "incident 7", "--json")
    )  # fmt: skip
    assert (suspended["status"], suspended["status_reason"]) == ("suspended", "incident 7")
    reasons = [str(event["reason"]) for event in ledger(tmp_path, "governance-refused")]
    assert any("role 'security'" in r for r in reasons) and any(
        "a key of dana" in r for r in reasons
    )
    created, authorized = ledger(tmp_path, "governance-authorized")
    assert created["action"] == "agent-activate"
    assert authorized["action"] == "agent-suspend" and authorized["target"] == "agent:bot"
    assert str(authorized["key_fingerprint"]).startswith("SHA256:")
    # a statement signed elsewhere, submitted twice: the second time is a replay
    statement = tmp_path / "activate.json"
    statement.write_text(cli("identity", "statement", "agent-activate", "agent:bot", "--as", "sam"))
    ssh_sign(key(found, "sam"), "codefactory-governance", statement)
    signed = ("--statement", str(statement), "--signature", f"{statement}.sig")
    cli("agents", "activate", "agent:bot", "--as", "sam", *signed)
    assert "used already (replay)" in cli("agents", "activate", "agent:bot", "--as", "sam",
                                          *signed, code=1)  # fmt: skip
    assert "non-humans never" in cli("agents", "revoke", "agent:bot", "--as", "agent:bot",
                                     "--key", key(found, "sam"), code=1)  # fmt: skip
    assert "retired" in cli("identity", "rotate-key", "--as", "sam", "--key", key(found, "sam"))


def test_a_policy_change_takes_effect_only_after_a_second_person_approves(
    world: tuple[Cli, People, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cli, found, tmp_path = world
    allow = ("policy", "check", "--source", "jira", "--action", "fix_lint", "--json",
             "--context", '{"sponsor": "priya.shah"}')  # fmt: skip
    assert json.loads(cli(*allow))["allowed"] is True  # first use: the default is adopted
    (adopted,) = ledger(tmp_path, "policy-adopted")
    stricter = tmp_path / "strict.cedar"
    stricter.write_text(
        default_policy_path().read_text()
        + '\n@id("no-lint")\n@reason("lint fixes are paused")\n'
        + 'forbid(principal, action == Action::"fix_lint", resource);\n'
    )
    monkeypatch.setenv("CODEFACTORY_POLICY_FILE", str(stricter))
    # the file changed; the approved policy stays in force and the factory says so
    assert json.loads(cli(*allow))["allowed"] is True
    status = json.loads(cli("policy", "status", "--json"))
    assert status["pending"] and status["active_digest"] == adopted["digest"]
    proposed = cli("policy", "propose", "--as", "pat", "--key", key(found, "pat"))
    digest = status["configured_digest"]
    assert digest in proposed
    assert "four eyes" in cli("policy", "approve", digest, "--as", "pat",
                              "--key", key(found, "pat"), code=1)  # fmt: skip
    cli("policy", "approve", digest, "--as", "quinn", "--key", key(found, "quinn"))
    assert json.loads(cli(*allow, code=1))["policy_ids"] == ["no-lint"]


def test_an_engine_registry_change_needs_two_registry_admins(
    world: tuple[Cli, People, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from codefactory.engines.registry import default_registry_path

    cli, found, tmp_path = world
    assert json.loads(cli("engines", "status", "--json"))["pending"] is False  # first use
    changed = tmp_path / "registry.toml"
    changed.write_text(default_registry_path().read_text() + "\n# reviewed 2026-11\n")
    monkeypatch.setenv("CODEFACTORY_ENGINES__REGISTRY", str(changed))
    assert json.loads(cli("engines", "status", "--json"))["pending"] is True
    cli("engines", "propose", "--as", "rita", "--key", key(found, "rita"))
    digest = json.loads(cli("engines", "status", "--json"))["proposals"][0]["digest"]
    assert "role 'registry-admin'" in cli("engines", "approve", digest, "--as", "pat",
                                          "--key", key(found, "pat"), code=1)  # fmt: skip
    cli("engines", "approve", digest, "--as", "ravi", "--key", key(found, "ravi"))
    after = json.loads(cli("engines", "status", "--json"))
    assert after["pending"] is False and after["active_digest"] == digest


def test_review_through_the_cli_signed_with_a_key_or_a_statement_signed_elsewhere(
    world: tuple[Cli, People, Path],
) -> None:
    cli, found, tmp_path = world
    factory = factory_for(tmp_path, found.directory)
    first, second = run_in_review(factory, tmp_path), run_in_review(factory, tmp_path)
    bare = cli("review", "approve", first, "--as", "jordan.lee", code=1)
    assert "a name alone proves nothing" in bare and "review statement" in bare
    cli("review", "approve", first, "--as", "jordan.lee", "--key", key(found, "jordan.lee"),
        "--comment", "looks right")  # fmt: skip
    kept = Path(factory.store.require_run(first).package_dir) / "reviews" / "1-approve.json"
    assert json.loads(kept.read_text())["comment"] == "looks right"
    statement = tmp_path / "verdict.json"
    statement.write_text(cli("review", "statement", second, "--verdict", "reject",
                             "--as", "mallory"))  # fmt: skip
    ssh_sign(key(found, "mallory"), "codefactory-review", statement)
    signed = ("--statement", str(statement), "--signature", f"{statement}.sig")
    assert "not 'approve'" in cli("review", "approve", second, "--as", "mallory", *signed, code=1)
    rejected = json.loads(cli("review", "reject", second, "--as", "mallory", *signed, "--json"))
    assert rejected["state"] == "rejected"
