"""The factory wired with its keys in a SoftHSM2 token and pinned: the forge signs agents'
commits in the token, checkpoints are signed there and verify against the pins, and the served
JWKS publishes the pinned keys only."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from codefactory.domain import Change, FileChange, UnknownEvent
from codefactory.factory import build_factory
from codefactory.identity.keyfiles import Ed25519KeyFiles
from codefactory.identity.published import allowed_signers
from codefactory.identity.services import keys_dir
from codefactory.review.local_forge import LocalForge
from codefactory.web.app import create_app
from tests.conftest import asgi_get, make_repo
from tests.integration.test_keys_trust import pinned, settings_for
from tests.softhsm_helpers import softhsm_token


def test_the_factory_signs_in_the_token_and_publishes_only_the_pins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime

    token = softhsm_token(tmp_path / "hsm", monkeypatch)
    settings = settings_for(tmp_path, {"signer": "pkcs11", "pkcs11": token.model_dump()})
    factory = build_factory(pinned(settings, tmp_path / "etc"))
    agent = factory.identity.agents.require_active(settings.agent_id)
    repo = tmp_path / "sample-service"
    base = make_repo(repo, {"app.py": "print('hello')\n"})
    forge = factory.loop.forge
    assert isinstance(forge, LocalForge)
    commit = forge.open_change(
        repo=repo,
        repository="acme/sample-service",
        base_commit=base,
        branch="factory/r-1",
        change=Change(files=(FileChange(path="app.py", content=b"print('fixed')\n"),)),
        message="fix\n",
        author_name=agent.display_name,
        author_email=agent.email,
    )
    assert not [p for p in keys_dir(settings).rglob("*") if p.is_file()]  # no key file at all
    signers = tmp_path / "allowed_signers"
    trust = factory.identity.trust
    signers.write_text(allowed_signers(factory.identity.agents.search(), trust=trust))
    verified = subprocess.run(
        ["git", "-C", str(forge.repository_path("acme/sample-service"))]
        + ["-c", f"gpg.ssh.allowedSignersFile={signers}", "verify-commit", commit],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verified.returncode == 0, verified.stderr
    factory.audit.append(UnknownEvent(kind="test-event", actor="t", at=datetime.now(UTC)))
    assert factory.audit.checkpoint().checkpoint.size == len(factory.audit.events())
    assert factory.audit.verify().ok
    appended = Ed25519KeyFiles(keys_dir(settings) / "issuer", name="codefactory:local")
    appended_kid = appended.public_keys()[0].kid  # a key file and keys.json in the data folder
    keys = asgi_get(create_app(factory), "/.well-known/jwks.json").json()["keys"]
    assert trust is not None
    assert [k["kid"] for k in keys if "iss" in k] == [trust.current_issuer_kid]
    assert [k["sub"] for k in keys if "sub" in k] == [settings.agent_id]
    assert appended_kid not in [k["kid"] for k in keys]
