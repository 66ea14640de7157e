"""Issue 11's findings on keys, reproduced: with write access to the data folder one could
re-sign rewritten history, append a key to `keys.json`, sign a commit with the agent's key
file and mint a delegation token with the issuer's key file. With the keys in a PKCS#11 token
(SoftHSM2) and the public keys pinned outside the data folder, each of these fails; in
development mode the same attacks still work, and the factory says so loudly."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from codefactory.audit.leaf import stored_leaf
from codefactory.audit.sql import SqlAuditLog
from codefactory.config import Settings
from codefactory.domain import Change, FileChange, UnknownEvent
from codefactory.factory import default_agent
from codefactory.identity import DelegationRefused
from codefactory.identity.errors import SignerUnavailable, TrustInvalid
from codefactory.identity.keyfiles import Ed25519KeyFiles
from codefactory.identity.published import allowed_signers, jwks, pinned_ssh_key
from codefactory.identity.services import (
    build_identity,
    check_signing,
    issuer_for,
    keys_dir,
    unpinned_issuer,
)
from codefactory.identity.settings import Pkcs11Settings
from codefactory.identity.tokens import sign_token
from codefactory.identity.trust import render_trust
from codefactory.identity.trust_export import export_trust
from codefactory.identity.trust_report import banner, key_custody
from codefactory.review.local_forge import LocalForge
from codefactory.review.signing import AgentCommitSigning
from codefactory.store.db import open_engine
from codefactory.store.identity_tables import DelegationTokenRow
from codefactory.store.models import AuditEventRow
from codefactory.store.runs import RunStore
from tests.conftest import make_repo
from tests.integration.test_identity_registry import Governance
from tests.softhsm_helpers import softhsm_token

REPOSITORY = "acme/payments-api"


@pytest.fixture
def token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Pkcs11Settings:
    return softhsm_token(tmp_path / "hsm", monkeypatch)


def settings_for(tmp_path: Path, identity: dict[str, Any]) -> Settings:
    return Settings(data_dir=tmp_path / "data", identity=identity)


def pinned(settings: Settings, folder: Path) -> Settings:
    """Export the trust roots of the current keys and pin them (what an installer does)."""
    origin = SqlAuditLog(open_engine(settings.database_url)).origin
    folder.mkdir(parents=True, exist_ok=True)
    trust = folder / "trust.toml"
    trust.write_text(render_trust(export_trust(settings, origin=origin)))
    identity = settings.identity.model_copy(update={"trust_file": trust})
    return settings.model_copy(update={"identity": identity})


def governance_for(settings: Settings) -> Governance:
    engine = open_engine(settings.database_url)
    issuer = issuer_for(settings)
    audit = SqlAuditLog(engine, sign=issuer.note_signer, public_keys=issuer.raw_public_keys)
    identity = build_identity(
        settings, engine=engine, audit=audit, issuer=issuer, default_agent=default_agent(settings)
    )
    return Governance(settings, audit, RunStore(engine, audit), identity)


@pytest.fixture
def hsm(tmp_path: Path, token: Pkcs11Settings) -> Governance:
    settings = settings_for(tmp_path, {"signer": "pkcs11", "pkcs11": token.model_dump()})
    return governance_for(pinned(settings, tmp_path / "etc"))


def fill(governance: Governance, count: int) -> None:
    from datetime import UTC, datetime

    for index in range(count):
        governance.audit.append(
            UnknownEvent(
                kind="test-event", actor="test", payload={"i": index}, at=datetime.now(UTC)
            )
        )


def rewrite_and_resign(governance: Governance) -> Ed25519KeyFiles:
    """The attack: edit an event, recompute its leaf hash, drop the cached tree and every
    checkpoint, and sign a new checkpoint with the issuer key file in the data folder (made,
    or with a key appended to `keys.json`, when the real key is out of reach)."""
    engine = governance.store.engine
    with Session(engine) as session, session.begin():
        row = session.get(AuditEventRow, 1)
        assert row is not None
        row.data = '{"forged":true}'
        forged = UnknownEvent(
            kind=row.name, actor=row.actor, run_id=row.run_id, payload={"forged": True},
            at=__import__("datetime").datetime.fromisoformat(row.at),
        )  # fmt: skip
        row.leaf_hash = stored_leaf(1, forged).leaf_hash
        session.execute(text("DELETE FROM audit_subtrees"))
        session.execute(text("DELETE FROM audit_checkpoints"))
    key_file = Ed25519KeyFiles(keys_dir(governance.settings) / "issuer", name="codefactory:local")
    forger = SqlAuditLog(engine, sign=key_file.note_signer, public_keys=key_file.raw_public_keys)
    forger.checkpoint()
    assert forger.verify().ok  # by the forger's own keys, the forgery is consistent
    return key_file


def test_resigned_history_passes_in_development_mode_and_is_reported_loudly(
    tmp_path: Path,
) -> None:
    governance = governance_for(settings_for(tmp_path, {}))
    fill(governance, 4)
    governance.audit.checkpoint()
    rewrite_and_resign(governance)
    assert governance.audit.verify().ok  # the finding: the key file re-signs history
    custody = key_custody(governance.settings)
    assert custody.as_dict()["pinned"] is False
    assert custody.signer == "development-key-files"
    message = banner(governance.settings) or ""
    assert message.startswith("WARNING: keys not protected")
    assert "anyone who can write the data folder can rewrite and re-sign the audit log" in message


def test_resigned_history_fails_audit_verify_when_a_token_key_is_pinned(
    hsm: Governance,
) -> None:
    fill(hsm, 4)
    hsm.audit.checkpoint()
    assert hsm.audit.verify().ok
    assert not list(keys_dir(hsm.settings).glob("**/*.pem"))  # no private key file anywhere
    key_file = rewrite_and_resign(hsm)
    report = hsm.audit.verify()
    assert not report.ok and "does not verify" in report.reason
    assert banner(hsm.settings) is None and key_custody(hsm.settings).pinned
    # the key appended to keys.json is neither published nor trusted
    appended = key_file.public_keys()[0]
    published = jwks(
        hsm.identity.issuer.name,
        hsm.identity.issuer.public_keys(),
        hsm.identity.agents.search(),
        trust=hsm.identity.trust,
    )
    kids = [entry["kid"] for entry in published["keys"]]
    assert appended.kid not in kids
    assert hsm.identity.trust is not None
    assert kids[0] == hsm.identity.trust.current_issuer_kid
    assert appended.public_key not in hsm.identity.issuer.raw_public_keys()


def test_a_key_appended_to_keys_json_signs_and_verifies_nothing_when_pinned(
    tmp_path: Path,
) -> None:
    settings = settings_for(tmp_path, {})
    governance_for(settings)  # first use makes the key files
    governance = governance_for(pinned(settings, tmp_path / "etc"))
    run = governance.new_run()
    agent = governance.identity.agents.require_active(run.agent_id)
    with governance.store.atomic() as tx:
        governance.identity.delegation.issue(run, agent, session=tx.session)
    governance.identity.delegation.check(run, action="forge:commit")
    # the forger makes a new key current in keys.json
    files = Ed25519KeyFiles(keys_dir(settings) / "issuer", name="codefactory:local")
    files.rotate()
    with pytest.raises(SignerUnavailable, match="identity.trust_file: the issuer's signing key"):
        governance.identity.issuer.sign(b"anything")
    with pytest.raises(SignerUnavailable):
        governance.audit.checkpoint()
    minted, kid = sign_token(
        {**_claims(governance, run.id), "sub": "someone.else", "scope": "repository:* change:*"},
        files,
    )
    _store_token(governance, run.id, minted)
    with pytest.raises(DelegationRefused, match="signed by an unknown key"):
        governance.identity.delegation.check(run, action="forge:commit")
    published = jwks("codefactory:local", governance.identity.issuer.public_keys(), [])
    assert kid not in [entry["kid"] for entry in published["keys"]]


def test_a_delegation_token_minted_with_a_key_file_is_refused_when_pinned(
    hsm: Governance,
) -> None:
    run = hsm.new_run()
    agent = hsm.identity.agents.require_active(run.agent_id)
    with hsm.store.atomic() as tx:
        issued = hsm.identity.delegation.issue(run, agent, session=tx.session)
    assert hsm.identity.delegation.check(run, action="forge:commit")["run_id"] == run.id
    key_file = Ed25519KeyFiles(keys_dir(hsm.settings) / "issuer", name="codefactory:local")
    forged, _ = sign_token({**issued.claims, "sub": "mallory"}, key_file)
    _store_token(hsm, run.id, forged)
    with pytest.raises(DelegationRefused, match="signed by an unknown key"):
        hsm.identity.delegation.check(run, action="forge:commit")
    assert hsm.names(run.id)[-1] == "delegation-refused"


def test_agent_commits_are_signed_in_the_token_and_a_key_file_forgery_is_rejected(
    hsm: Governance, tmp_path: Path
) -> None:
    repo = tmp_path / "payments-api"
    base = make_repo(repo, {"app.py": "print('hello')\n"})
    agent = hsm.identity.agents.require_active("agent:codefactory-recipes")
    assert not (keys_dir(hsm.settings) / "agents").exists()  # no agent key file in the data folder
    forge = LocalForge(tmp_path / "forge", signing=AgentCommitSigning(hsm.identity.agent_keys))
    commit = _commit(forge, repo, base, agent.email, "factory/r-1")
    signers = tmp_path / "allowed_signers"
    signers.write_text(allowed_signers(hsm.identity.agents.search(), trust=hsm.identity.trust))
    bare = forge.repository_path(REPOSITORY)
    verified = _git(bare, "verify-commit", "-v", commit, signers=signers)
    assert verified.returncode == 0, verified.stderr
    assert f'Good "git" signature for {agent.email}' in verified.stderr
    # a key file claiming the agent's address: plain git with the pinned signers rejects it
    from codefactory.identity.agent_keys import AgentKeyFiles

    impostor = AgentKeyFiles(keys_dir(hsm.settings) / "agents")
    impostor.create(agent.id, comment="impostor")
    forged = _commit(
        LocalForge(tmp_path / "forge", signing=AgentCommitSigning(impostor)),
        repo, base, agent.email, "factory/forged",
    )  # fmt: skip
    rejected = _git(bare, "verify-commit", forged, signers=signers)
    assert rejected.returncode != 0 and "No principal matched" in rejected.stderr
    # the store's copy of the agent key is not what is published: the pinned key is
    with Session(hsm.store.engine) as session, session.begin():
        session.execute(
            text("UPDATE agents SET ssh_public_key = :key WHERE id = :id"),
            {"key": impostor.public(agent.id).openssh, "id": agent.id},
        )
    republished = allowed_signers(hsm.identity.agents.search(), trust=hsm.identity.trust)
    assert impostor.public(agent.id).openssh.split()[1] not in republished
    assert _git(bare, "verify-commit", forged, signers=signers).returncode != 0
    stored = hsm.identity.agents.get(agent.id)
    pinned_key = pinned_ssh_key(stored, hsm.identity.trust)
    assert (
        stored is not None and pinned_key != stored.ssh_public_key
    )  # the pinned key, not the store's
    # provenance (DSSE) is signed in the token too, and checks against the pinned key
    envelope = _dsse(hsm, agent.id)
    assert envelope["signatures"][0]["keyid"] == hsm.identity.agent_keys.public(agent.id).kid
    assert _dsse_verifies(envelope, pinned_key)
    assert not _dsse_verifies(envelope, impostor.public(agent.id).openssh)


def test_pkcs11_without_a_trust_file_refuses_to_start(
    tmp_path: Path, token: Pkcs11Settings
) -> None:
    settings = settings_for(tmp_path, {"signer": "pkcs11", "pkcs11": token.model_dump()})
    with pytest.raises(TrustInvalid, match="identity trust-export"):
        issuer_for(settings)
    inside = settings.data_dir / "trust.toml"
    inside.parent.mkdir(parents=True, exist_ok=True)
    inside.write_text('issuer = "x"\n')
    identity = settings.identity.model_copy(update={"trust_file": inside})
    with pytest.raises(TrustInvalid, match="inside the data folder"):
        issuer_for(settings.model_copy(update={"identity": identity}))
    outside = tmp_path / "etc" / "trust.toml"
    outside.parent.mkdir()
    outside.write_text("issuer = [")
    identity = settings.identity.model_copy(update={"trust_file": outside})
    with pytest.raises(TrustInvalid, match="malformed"):
        issuer_for(settings.model_copy(update={"identity": identity}))
    pkcs11 = token.model_copy(update={"pin": None, "pin_file": settings.data_dir / "pin"})
    identity = settings.identity.model_copy(update={"pkcs11": pkcs11})
    with pytest.raises(SignerUnavailable, match="pin_file: .* is inside the data folder"):
        unpinned_issuer(settings.model_copy(update={"identity": identity}))


def test_an_hsm_that_becomes_unavailable_fails_closed_with_an_audit_event(
    hsm: Governance,
) -> None:
    check_signing(hsm.identity, hsm.audit, signer_mode="pkcs11")  # available: nothing to say
    pkcs11 = hsm.settings.identity.pkcs11.model_copy(update={"token_label": "gone"})
    identity = hsm.settings.identity.model_copy(update={"pkcs11": pkcs11})
    broken = hsm.settings.model_copy(update={"identity": identity})
    governance = governance_for(broken)
    with pytest.raises(SignerUnavailable, match="identity.pkcs11.token_label"):
        check_signing(governance.identity, governance.audit, signer_mode="pkcs11")
    last = governance.audit.events()[-1]
    assert last.name == "signer-unavailable"
    assert last.data["setting"] == "identity.pkcs11.token_label"
    with pytest.raises(SignerUnavailable):
        governance.audit.checkpoint()  # nothing is signed on a guess


def _claims(governance: Governance, run_id: str) -> dict[str, Any]:
    with Session(governance.store.engine) as session:
        row = session.query(DelegationTokenRow).filter_by(run_id=run_id).one()
        payload = row.token.split(".")[1]
    import base64

    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))  # type: ignore[no-any-return]


def _dsse(governance: Governance, agent_id: str) -> dict[str, Any]:
    from codefactory.package.provenance import envelope

    def sign(message: bytes) -> tuple[str, bytes]:
        key, signature = governance.identity.agent_keys.sign(agent_id, message)
        return key.kid, signature

    return envelope({"_type": "https://in-toto.io/Statement/v1"}, sign)


def _dsse_verifies(envelope: dict[str, Any], ssh_public_key: str) -> bool:
    import base64

    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from codefactory.identity.trust import ssh_raw_key
    from codefactory.package.provenance import pae

    key = Ed25519PublicKey.from_public_bytes(ssh_raw_key(ssh_public_key))
    payload = base64.b64decode(envelope["payload"])
    try:
        key.verify(
            base64.b64decode(envelope["signatures"][0]["sig"]),
            pae(envelope["payloadType"], payload),
        )
    except InvalidSignature:
        return False
    return True


def _store_token(governance: Governance, run_id: str, token: str) -> None:
    with Session(governance.store.engine) as session, session.begin():
        session.query(DelegationTokenRow).filter_by(run_id=run_id).one().token = token


def _commit(forge: LocalForge, repo: Path, base: str, email: str, branch: str) -> str:
    return forge.open_change(
        repo=repo,
        repository=REPOSITORY,
        base_commit=base,
        branch=branch,
        change=Change(files=(FileChange(path="app.py", content=b"print('fixed')\n"),)),
        message="fix\n",
        author_name="Agent",
        author_email=email,
    )


def _git(bare: Path, *args: str, signers: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-C", str(bare), "-c", f"gpg.ssh.allowedSignersFile={signers}", *args],
        capture_output=True,
        text=True,
        check=False,
    )
