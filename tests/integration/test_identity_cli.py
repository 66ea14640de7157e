"""The `agents`, `identity` and `audit` commands in process (Typer's runner, a real store);
the CLI as a subprocess is exercised in `tests/acceptance/test_governance.py`."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from codefactory.audit.checkpoint import Checkpoint
from codefactory.cli import app
from codefactory.config import Settings
from codefactory.domain import UnknownEvent
from codefactory.factory import build_factory
from tests.directory_helpers import DIRECTORY_ENV, person, write_directory
from tests.integration.signed_people import make_key


@pytest.fixture
def sec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, ...]:
    """`--as sec --key K`: a person with the security role and their SSH key."""
    made = make_key(tmp_path / "people", "sec")
    entry = person("Sec", roles=["security"], ssh_keys=[made.public])
    directory = write_directory(tmp_path / "people" / "directory.toml", {"sec": entry})
    monkeypatch.setenv(DIRECTORY_ENV, str(directory))
    return ("--as", "sec", "--key", str(made.private))


@pytest.fixture
def run_cli(tmp_path: Path):  # type: ignore[no-untyped-def]
    runner = CliRunner()
    data_dir = tmp_path / "data"

    def invoke(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, ["--data-dir", str(data_dir), *args])
        assert result.exit_code == code, (args, result.output)
        return result.stdout if "--json" in args else result.output  # notes go to stderr

    return invoke


def test_agents_lifecycle_through_the_cli(run_cli, tmp_path: Path, sec) -> None:  # type: ignore[no-untyped-def]
    created = json.loads(
        run_cli("agents", "create", "agent:docs-bot", "--owner", "dana", "--engine", "llm:*",
                "--name", "Docs bot", "--as", "alice", "--pending", "--json")
    )  # fmt: skip
    assert (created["status"], created["engines"], created["owner"]) == (
        "created",
        ["llm:*"],
        "dana",
    )
    assert created["ssh_public_key"].startswith("ssh-ed25519 ")
    assert "already exists" in run_cli(
        "agents", "create", "agent:docs-bot", "--owner", "d", "--as", "a", "--pending", code=1
    )
    assert "agent:docs-bot" in run_cli("agents", "list")
    assert [a["id"] for a in json.loads(run_cli("agents", "list", "--json"))] == ["agent:docs-bot"]
    assert "owner:         dana" in run_cli("agents", "show", "agent:docs-bot")
    assert "no agent with id" in run_cli("agents", "show", "agent:ghost", code=1)
    run_cli("agents", "activate", "agent:docs-bot", *sec)
    suspended = json.loads(
        run_cli("agents", "suspend", "agent:docs-bot", *sec, "--reason", "r", "--json")
    )
    assert (suspended["status"], suspended["status_reason"]) == ("suspended", "r")
    assert "revoked" in run_cli("agents", "revoke", "agent:docs-bot", *sec)
    assert "cannot become active" in run_cli("agents", "activate", "agent:docs-bot", *sec, code=1)


def test_identity_publication_through_the_cli(run_cli, tmp_path: Path, sec) -> None:  # type: ignore[no-untyped-def]
    run_cli("agents", "create", "agent:bot", "--owner", "dana", *sec)
    keys = json.loads(run_cli("identity", "jwks"))["keys"]
    assert [k.get("status") for k in keys] == ["current", "active"]
    assert "retired" in run_cli("identity", "rotate-key", *sec)
    target = tmp_path / "jwks.json"
    run_cli("identity", "jwks", "--output", str(target))
    assert len(json.loads(target.read_text())["keys"]) == 3
    signers = tmp_path / "signers"
    assert "verify-commit" in run_cli("identity", "allowed-signers", "--output", str(signers))
    assert signers.read_text().splitlines()[1].startswith("agent-bot@agents.codefactory.invalid ")
    run_cli("identity", "allowed-signers")
    assert (tmp_path / "data" / "keys" / "allowed_signers").is_file()
    assert "no delegation token" in run_cli("identity", "revoke-token", "nope", *sec, code=1)


def test_audit_commands_through_the_cli(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    factory = build_factory(Settings(data_dir=tmp_path / "data"))
    assert [e.name for e in factory.audit.events()] == [  # the factory's start records them
        "registry-adopted",  # four eyes: the first registry and policy seen are adopted
        "engine-registry-changed",
        "engine-registry-loaded",
        "policy-adopted",
    ]
    for i in range(3):
        factory.audit.append(
            UnknownEvent(kind="step", actor="a", payload={"i": i}, at=datetime.now(UTC))
        )
    note = run_cli("audit", "checkpoint")
    assert note.splitlines()[1] == "7"
    assert json.loads(run_cli("audit", "checkpoint", "--json"))["note"] == note
    exported = [json.loads(line) for line in run_cli("audit", "export").splitlines()]
    assert [line["index"] for line in exported] == [0, 1, 2, 3, 4, 5, 6]
    proof = json.loads(run_cli("audit", "prove", "--index", "2", "--size", "4"))
    assert proof["tree_size"] == 4 and "checkpoint" not in proof
    assert json.loads(run_cli("audit", "prove", "--consistency", "2", "5"))["second"] == 5
    assert "either --index" in run_cli("audit", "prove", code=1)
    assert "no tree of size 9" in run_cli("audit", "prove", "--index", "1", "--size", "9", code=1)
    saved = tmp_path / "cp.txt"
    saved.write_text(note)
    assert "extends the given checkpoint" in run_cli("audit", "verify", "--checkpoint", str(saved))
    assert json.loads(run_cli("audit", "verify", "--json"))["ok"] is True
    key = Ed25519PrivateKey.generate()
    foreign = tmp_path / "foreign.txt"
    foreign.write_text(
        Checkpoint(origin="other.example/log", size=1, root=bytes(32)).sign(
            lambda m: (key.public_key().public_bytes_raw(), key.sign(m))
        )
    )
    assert "from another log" in run_cli("audit", "verify", "--checkpoint", str(foreign), code=1)
    assert "cannot read the checkpoint" in run_cli(
        "audit", "verify", "--checkpoint", str(tmp_path / "missing"), code=1
    )
    assert "no run with id" in run_cli("audit", "explain", "r-nope", code=1)
    with factory.store.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE audit_events SET data = '{\"i\": 1}' WHERE seq = 5")
    assert "cannot be exported" in run_cli("audit", "export", code=1)
    assert "event 5 (step) was altered" in run_cli("audit", "verify", code=1)
    with factory.store.engine.begin() as connection:
        connection.exec_driver_sql(
            f"UPDATE audit_events SET leaf_hash = '{'0' * 64}' WHERE seq = 5"
        )
    assert "refusing to sign" in run_cli("audit", "checkpoint", code=1)


@pytest.mark.parametrize(
    ("option", "value", "why"),
    [
        # a person's name may be 256 characters, `unauthenticated:` before it may not
        ("--as", "p" * 250, "actor is longer than 256 characters"),
        ("--owner", "dana\udcff", "surrogate"),  # a byte of argv that is not UTF-8
    ],
)
def test_an_agent_that_cannot_be_recorded_is_refused_before_its_key_is_made(
    run_cli, tmp_path: Path, option: str, value: str, why: str
) -> None:  # type: ignore[no-untyped-def]
    """The `agent-created` event is checked before the signing key exists: a refused agent
    leaves no key behind (none to reuse, on disk or in a token) and no row."""
    given = {"--as": "alice", "--owner": "dana", "--name": "Docs bot", option: value}
    args = [arg for pair in given.items() for arg in pair]
    said = run_cli("agents", "create", "agent:orphan", *args, "--pending", code=1)
    assert "agent agent:orphan cannot be recorded" in said and why in said, said
    assert not list((tmp_path / "data" / "keys").glob("agents/*orphan*"))
    assert "agent:orphan" not in run_cli("agents", "list")
