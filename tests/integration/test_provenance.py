"""`provenance.dsse.json`, verified by the reference implementations (securesystemslib, in-toto)."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from in_toto.models.metadata import Envelope as InTotoEnvelope
from in_toto.models.metadata import Metadata
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import SSlibKey

from codefactory.domain import (
    Change,
    ChangeKind,
    CheckResult,
    FileChange,
    Proposal,
    Run,
    RunState,
    TriggerEvent,
)
from codefactory.identity.agent_keys import AgentKey, AgentKeyFiles
from codefactory.package.builder import FolderPackageBuilder
from codefactory.package.port import PackageContents
from codefactory.package.provenance import (
    PAYLOAD_TYPE,
    PREDICATE_TYPE,
    STATEMENT_TYPE,
    DsseProvenance,
    pae,
)

NOW = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
BASE, COMMIT = "a" * 40, "b" * 40
AGENT = "agent:dependency-bump"
PATCH = "diff --git a/requirements.txt b/requirements.txt\n-idna==3.6\n+idna==3.7\n"


def contents() -> PackageContents:
    run = Run(
        id="r-0001", trigger_id="t-1", kind=ChangeKind.BUMP_DEPENDENCY,
        repository="acme/payments-api", sponsor="alice", agent_id=AGENT,
        state=RunState.VERIFIED, reason="", base_commit=BASE, head_commit="", branch="",
        package_dir="", created_at=NOW, repository_path="/srv/repos/payments-api",
    )  # fmt: skip
    trigger = TriggerEvent(
        source="jira", kind=ChangeKind.BUMP_DEPENDENCY, external_id="PAY-123", actor="bob",
        repository="payments-api", title="Fix CVE in idna", body="", received_at=NOW,
        payload_digest="sha256:00",
    )  # fmt: skip
    results = (
        CheckResult(check="tests", passed=True, evidence_name="junit.xml", evidence="<xml/>"),
        CheckResult(check="sca", passed=True, summary="no advisories"),
    )
    return PackageContents(
        run=run, trigger=trigger, results=results, rounds=1, patch=PATCH, commit=COMMIT,
        proposal=Proposal(engine="recipe:dependency-bump", engine_version="1", rationale="bump"),
        branch="factory/r-0001", forge_repository="/srv/forge/payments-api.git",
        change=Change(files=(FileChange(path="requirements.txt", content=b"idna==3.7\n"),)),
    )  # fmt: skip


@pytest.fixture
def keys(tmp_path: Path) -> AgentKeyFiles:
    keys = AgentKeyFiles(tmp_path / "keys")
    keys.create(AGENT, comment=AGENT)
    return keys


def build(tmp_path: Path, keys: AgentKeyFiles) -> tuple[Path, AgentKey]:
    def sign(agent_id: str, message: bytes) -> tuple[str, bytes]:
        key, signature = keys.sign(agent_id, message)
        return key.kid, signature

    facts = {"policyDecisions": [{"stage": "intake", "allowed": True}], "delegation": {"jti": "j1"}}
    provenance = DsseProvenance(sign=sign, facts=lambda run_id: facts, builder_id="codefactory:x")
    package = FolderPackageBuilder(tmp_path / "packages", provenance=provenance).build(contents())
    assert "provenance.dsse.json" in package.files
    return package.directory / "provenance.dsse.json", keys.public(AGENT)


def sslib_key(key: AgentKey) -> SSlibKey:
    return SSlibKey.from_crypto(Ed25519PublicKey.from_public_bytes(key.public_key), keyid=key.kid)


def test_securesystemslib_verifies_the_envelope(tmp_path: Path, keys: AgentKeyFiles) -> None:
    path, key = build(tmp_path, keys)
    envelope = Envelope.from_dict(json.loads(path.read_text()))
    assert envelope.payload_type == PAYLOAD_TYPE
    verified = envelope.verify([sslib_key(key)], threshold=1)
    assert list(verified) == [key.kid]
    assert envelope.pae() == pae(PAYLOAD_TYPE, envelope.payload)


def test_in_toto_loads_and_verifies_it(tmp_path: Path, keys: AgentKeyFiles) -> None:
    path, key = build(tmp_path, keys)
    metadata = Metadata.load(str(path))
    assert isinstance(metadata, InTotoEnvelope)
    metadata.verify_signature(sslib_key(key).to_dict() | {"keyid": key.kid})


def test_the_statement_names_commit_diff_trigger_engine_policy_base_and_checks(
    tmp_path: Path, keys: AgentKeyFiles
) -> None:
    path, _ = build(tmp_path, keys)
    statement: dict[str, Any] = json.loads(
        base64.b64decode(json.loads(path.read_text())["payload"])
    )
    assert statement["_type"] == STATEMENT_TYPE
    assert statement["predicateType"] == PREDICATE_TYPE
    commit, patch = statement["subject"]
    assert commit["digest"] == {"gitCommit": COMMIT}
    patch_bytes = (path.parent / "change.patch").read_bytes()
    assert patch == {
        "name": "change.patch",
        "digest": {"sha256": hashlib.sha256(patch_bytes).hexdigest()},
    }
    definition = statement["predicate"]["buildDefinition"]
    assert definition["buildType"].startswith("https://")
    assert definition["externalParameters"]["trigger"]["externalId"] == "PAY-123"
    internal = definition["internalParameters"]
    assert internal["engine"] == {"name": "recipe:dependency-bump", "version": "1"}
    assert internal["policyDecisions"] == [{"stage": "intake", "allowed": True}]
    assert [c["check"] for c in internal["checks"]] == ["tests", "sca"]
    assert definition["resolvedDependencies"][0]["digest"] == {"gitCommit": BASE}
    # the repository by its canonical id; the dependency is the checkout that was read
    assert definition["externalParameters"]["repository"] == "acme/payments-api"
    assert definition["resolvedDependencies"][0]["uri"] == "git+file:///srv/repos/payments-api"
    details = statement["predicate"]["runDetails"]
    assert details["builder"]["id"] == "codefactory:x"
    assert details["metadata"]["invocationId"] == "r-0001"
    assert details["byproducts"][0]["name"] == "evidence/junit.xml"


def test_an_altered_statement_or_another_key_fails_verification(
    tmp_path: Path, keys: AgentKeyFiles
) -> None:
    path, key = build(tmp_path, keys)
    document = json.loads(path.read_text())
    statement = json.loads(base64.b64decode(document["payload"]))
    statement["subject"][0]["digest"]["gitCommit"] = "c" * 40
    document["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    with pytest.raises(VerificationError):
        Envelope.from_dict(document).verify([sslib_key(key)], threshold=1)
    other = AgentKeyFiles(tmp_path / "other")
    stranger = other.create(AGENT, comment="stranger")
    untouched = Envelope.from_dict(json.loads(path.read_text()))
    impostor = Ed25519PublicKey.from_public_bytes(stranger.public_key)
    with pytest.raises(VerificationError):
        untouched.verify([SSlibKey.from_crypto(impostor, keyid=key.kid)], threshold=1)
