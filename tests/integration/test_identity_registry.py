"""The issuer's key files, the agent registry in SQLite, and what the factory publishes."""

from __future__ import annotations

import json
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from codefactory.audit.sql import SqlAuditLog
from codefactory.config import Settings
from codefactory.domain import ChangeKind, Run, TriggerEvent
from codefactory.factory import default_agent
from codefactory.identity import AgentInvalid, AgentStatus, AgentUnavailable, KeyUnavailable
from codefactory.identity.keyfiles import Ed25519KeyFiles
from codefactory.identity.published import allowed_signers, jwks
from codefactory.identity.services import IdentityServices, build_identity, issuer_for
from codefactory.store.db import open_engine
from codefactory.store.runs import RunStore


@dataclass
class Governance:
    """The governance ring on a real SQLite store and real key files, without a sandbox."""

    settings: Settings
    audit: SqlAuditLog
    store: RunStore
    identity: IdentityServices

    def new_run(self, *, sponsor: str = "priya.shah", kind: str = "fix_lint") -> Run:
        event = TriggerEvent(
            source="jira",
            kind=ChangeKind(kind),
            external_id="SVC-1",
            actor=sponsor,
            repository="/srv/repos/sample-service",
            title="fix",
            body="",
            received_at=datetime.now(UTC),
            payload_digest="sha256:00",
        )
        with self.store.atomic() as tx:
            trigger_id = tx.record_trigger(event)
            run_id = tx.create_run(
                trigger_id=trigger_id,
                event=event,
                sponsor=sponsor,
                agent_id=self.settings.agent_id,
            )
        return self.store.require_run(run_id)

    def names(self, run_id: str | None = None) -> list[str]:
        return [record.name for record in self.audit.events(run_id)]


def make_governance(data_dir: Path) -> Governance:
    settings = Settings(data_dir=data_dir)
    engine = open_engine(settings.database_url)
    issuer = issuer_for(settings)
    audit = SqlAuditLog(engine, sign=issuer.note_signer, public_keys=issuer.raw_public_keys)
    identity = build_identity(
        settings, engine=engine, audit=audit, issuer=issuer, default_agent=default_agent(settings)
    )
    return Governance(settings, audit, RunStore(engine, audit), identity)


@pytest.fixture
def governance(tmp_path: Path) -> Governance:
    return make_governance(tmp_path / "data")


# --- issuer keys --------------------------------------------------------------------------


def test_the_first_issuer_key_is_made_on_first_use_owner_readable_only(tmp_path: Path) -> None:
    issuer = Ed25519KeyFiles(tmp_path / "issuer", name="codefactory:test")
    (key,) = issuer.public_keys()
    private = tmp_path / "issuer" / f"{key.kid}.pem"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    signed = issuer.sign(b"hello")
    assert (signed.kid, signed.public_key) == (key.kid, key.public_key)
    Ed25519PublicKey.from_public_bytes(key.public_key).verify(signed.signature, b"hello")
    assert Ed25519KeyFiles(tmp_path / "issuer", name="x").public_keys() == [key]


def test_rotation_keeps_old_public_keys_and_deletes_old_private_keys(tmp_path: Path) -> None:
    issuer = Ed25519KeyFiles(tmp_path / "issuer", name="codefactory:test")
    old = issuer.public_keys()[0]
    new = issuer.rotate()
    keys = issuer.public_keys()
    assert [k.kid for k in keys] == [new.kid, old.kid]
    assert keys[1].retired_at is not None and keys[0].retired_at is None
    assert not (tmp_path / "issuer" / f"{old.kid}.pem").exists()
    assert issuer.sign(b"x").kid == new.kid
    assert issuer.raw_public_keys() == [new.public_key, old.public_key]


def test_unreadable_or_swapped_key_files_are_named(tmp_path: Path) -> None:
    issuer = Ed25519KeyFiles(tmp_path / "issuer", name="codefactory:test")
    first = issuer.public_keys()[0]
    second = issuer.rotate()
    pub = tmp_path / "issuer" / f"{first.kid}.pub"
    pub.write_bytes((tmp_path / "issuer" / f"{second.kid}.pub").read_bytes())
    with pytest.raises(KeyUnavailable, match="thumbprint does not match"):
        issuer.public_keys()
    (tmp_path / "issuer" / f"{second.kid}.pem").write_text("not a key")
    with pytest.raises(KeyUnavailable, match=f"{second.kid}.pem"):
        issuer.sign(b"x")
    (tmp_path / "issuer" / "keys.json").write_text("{")
    with pytest.raises(KeyUnavailable, match="keys.json"):
        issuer.public_keys()


# --- the registry -----------------------------------------------------------------------


def test_the_default_agent_is_registered_on_first_use(governance: Governance) -> None:
    agents = governance.identity.agents
    assert agents.get("agent:codefactory-recipes") is None
    agent = agents.require_active("agent:codefactory-recipes")
    assert (agent.status, agent.issuer, agent.owner) == (
        AgentStatus.ACTIVE,
        "codefactory:local",
        "platform-engineering",
    )
    assert agent.ssh_public_key.startswith("ssh-ed25519 ")
    assert agents.require_active("agent:codefactory-recipes") == agent
    assert governance.names() == ["agent-created"]
    assert governance.audit.events()[0].actor == "factory"


def test_agents_move_through_their_lifecycle_with_audit_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.directory_helpers import DIRECTORY_ENV
    from tests.integration.governed import admins_directory, signed

    directory, keys = admins_directory(tmp_path / "people", "security", "sec")
    monkeypatch.setenv(DIRECTORY_ENV, str(directory))
    governance = make_governance(tmp_path / "data")
    agents = governance.identity.agents

    def by_sec(action: str, reason: str = ""):  # type: ignore[no-untyped-def]
        said = signed(governance.identity.directory, "sec", keys["sec"], action, agent.id, reason)
        return {"actor": "user:sec", "statement": said, "reason": reason}

    agent = agents.create(
        "agent:llm-fixer",
        display_name="LLM fixer",
        owner="dana.ortiz",
        engines=["llm:*"],
        actor="user:admin",
        active=False,
    )
    assert agent.status is AgentStatus.CREATED
    with pytest.raises(AgentUnavailable, match="is created"):
        agents.require_active(agent.id)
    agents.set_status(agent.id, AgentStatus.ACTIVE, **by_sec("agent-activate"))
    assert agents.require_active(agent.id).may_use("llm:gpt-5")
    agents.set_status(agent.id, AgentStatus.SUSPENDED, **by_sec("agent-suspend", "incident 42"))
    with pytest.raises(AgentUnavailable, match="agent:llm-fixer is suspended"):
        agents.require_active(agent.id)
    agents.set_status(agent.id, AgentStatus.ACTIVE, **by_sec("agent-activate", "fixed"))
    assert agents.require_active(agent.id)
    revoked = agents.set_status(agent.id, AgentStatus.REVOKED, **by_sec("agent-revoke", "gone"))
    assert (revoked.status, revoked.status_reason) == (AgentStatus.REVOKED, "gone")
    with pytest.raises(AgentInvalid, match="is revoked; it cannot become active"):
        agents.set_status(agent.id, AgentStatus.ACTIVE, **by_sec("agent-activate", "again"))
    assert governance.names() == [
        "agent-created",
        "agent-activated",
        "agent-suspended",
        "agent-activated",
        "agent-revoked",
    ]
    suspended = governance.audit.events()[2]
    assert (suspended.actor, suspended.data["reason"]) == ("user:sec", "incident 42")
    assert str(suspended.data["statement"]).startswith('{"_type":"codefactory.governance.v1"')
    assert governance.audit.verify().ok


@pytest.mark.parametrize(
    ("agent_id", "owner", "engines", "message"),
    [
        ("bot", "dana", ["x"], "invalid agent id"),
        ("agent:bot", " ", ["x"], "accountable human owner"),
        ("agent:bot", "dana", [], "at least one engine"),
    ],
)
def test_what_the_registry_refuses(
    governance: Governance, agent_id: str, owner: str, engines: list[str], message: str
) -> None:
    with pytest.raises(AgentInvalid, match=message):
        governance.identity.agents.create(
            agent_id, display_name="x", owner=owner, engines=engines, actor="user:a"
        )


def test_duplicates_and_unknown_agents(governance: Governance) -> None:
    agents = governance.identity.agents
    agents.create("agent:bot", display_name="Bot", owner="d", engines=["x"], actor="user:a")
    with pytest.raises(AgentInvalid, match="already exists"):
        agents.create("agent:bot", display_name="Bot", owner="d", engines=["x"], actor="user:a")
    with pytest.raises(AgentUnavailable, match="unknown"):
        agents.set_status("agent:ghost", AgentStatus.SUSPENDED, actor="user:a")
    with pytest.raises(AgentUnavailable, match="unknown"):
        agents.require_active("agent:ghost")
    with pytest.raises(AgentUnavailable, match="unknown"):
        agents.require("agent:ghost")
    assert [a.id for a in agents.search()] == ["agent:bot"]


# --- publication ------------------------------------------------------------------------


def test_the_jwks_holds_issuer_keys_then_agent_keys(governance: Governance) -> None:
    identity = governance.identity
    agent = identity.agents.require_active("agent:codefactory-recipes")
    identity.issuer.rotate()
    document = jwks(identity.issuer.name, identity.issuer.public_keys(), identity.agents.search())
    keys = document["keys"]
    assert [k.get("status") for k in keys] == ["current", "retired", "active"]
    assert keys[0]["iss"] == "codefactory:local" and keys[2]["sub"] == agent.id
    assert keys[2]["kid"] == identity.agent_keys.public(agent.id).kid
    assert all(k["kty"] == "OKP" and k["crv"] == "Ed25519" for k in keys)
    json.dumps(document)


def test_allowed_signers_name_each_agent_by_its_commit_address(governance: Governance) -> None:
    agents = governance.identity.agents
    recipes = agents.require_active("agent:codefactory-recipes")
    agents.create("agent:old", display_name="Old", owner="d", engines=["x"], actor="user:a")
    revoked = agents.set_status("agent:old", AgentStatus.REVOKED, actor="user:a")
    lines = allowed_signers(agents.search()).splitlines()
    assert lines[0].startswith("#")
    key = " ".join(recipes.ssh_public_key.split()[:2])  # the comment is left out
    assert lines[1] == f'{recipes.email} namespaces="git" {key}'
    assert revoked.updated_at is not None
    stamp = f"{revoked.updated_at:%Y%m%d%H%M%S}Z"
    assert lines[2].startswith(f'{revoked.email} namespaces="git",valid-before="{stamp}" ')


def test_agent_key_files_refuse_what_is_not_an_ed25519_key(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key

    from codefactory.identity.agent_keys import AgentKeyFiles

    keys = AgentKeyFiles(tmp_path / "agents")
    first = keys.create("agent:bot", comment="agent:bot")
    assert keys.create("agent:bot", comment="again") == first  # a crashed attempt's key is kept
    path = keys.private_key_path("agent:bot")
    ecdsa = generate_private_key(SECP256R1())
    path.with_suffix(".pub").write_bytes(
        ecdsa.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
    )
    with pytest.raises(KeyUnavailable, match="not an ssh-ed25519 key"):
        keys.public("agent:bot")
    path.with_suffix(".pub").write_text("garbage")
    with pytest.raises(KeyUnavailable, match="id_ed25519.pub"):
        keys.public("agent:bot")
    path.write_bytes(
        ecdsa.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(KeyUnavailable, match="not an ssh-ed25519 key"):
        keys.sign("agent:bot", b"x")
    path.unlink()
    with pytest.raises(KeyUnavailable, match="id_ed25519"):
        keys.sign("agent:bot", b"x")


def test_issuer_key_files_refuse_what_is_not_an_ed25519_key(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key

    issuer = Ed25519KeyFiles(tmp_path / "issuer", name="codefactory:test")
    kid = issuer.public_keys()[0].kid
    ecdsa = generate_private_key(SECP256R1())
    (tmp_path / "issuer" / f"{kid}.pem").write_bytes(
        ecdsa.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(KeyUnavailable, match="not an Ed25519 private key"):
        issuer.sign(b"x")
    pub = tmp_path / "issuer" / f"{kid}.pub"
    pub.write_bytes(
        ecdsa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    with pytest.raises(KeyUnavailable, match="not an Ed25519 public key"):
        issuer.public_keys()
    pub.unlink()
    with pytest.raises(KeyUnavailable, match=f"{kid}.pub"):
        issuer.public_keys()


def test_a_default_agent_registered_meanwhile_is_used(governance: Governance) -> None:
    agents = governance.identity.agents
    default = default_agent(governance.settings)
    first = agents._register_default(default)
    assert agents._register_default(default) == first  # "already exists": the other one's wins


def test_publication_skips_agents_without_keys_and_refuses_other_key_types(
    governance: Governance,
) -> None:
    from dataclasses import replace

    from codefactory.identity.published import agent_public_key

    agent = governance.identity.agents.require_active("agent:codefactory-recipes")
    keyless = replace(agent, ssh_public_key="")
    assert allowed_signers([keyless]).count("\n") == 1
    assert jwks("i", [], [keyless]) == {"keys": []}
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key

    ecdsa = generate_private_key(SECP256R1()).public_key()
    line = ecdsa.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    with pytest.raises(ValueError, match="has no ssh-ed25519 key"):
        agent_public_key(replace(agent, ssh_public_key=line.decode()))
