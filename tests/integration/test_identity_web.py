"""The JWK set and the audit log's checkpoint and proofs over HTTP (ASGI, in process)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from codefactory.audit.checkpoint import open_checkpoint
from codefactory.audit.merkle import verify_consistency, verify_inclusion
from codefactory.audit.note import NoteVerifier
from codefactory.config import Settings
from codefactory.domain import UnknownEvent
from codefactory.factory import build_factory
from codefactory.web.app import create_app
from tests.conftest import asgi_get
from tests.oidc_helpers import OidcProvider, oidc_settings, web_headers


def test_jwks_checkpoint_and_proofs_are_served(tmp_path: Path, oidc_provider: OidcProvider) -> None:
    extra = oidc_settings(oidc_provider, tmp_path / "people")
    factory = build_factory(Settings(data_dir=tmp_path / "data", **extra))

    def get(app: Any, path: str) -> httpx.Response:
        return asgi_get(app, path, web_headers(oidc_provider))

    factory.identity.agents.require_active(factory.settings.agent_id)
    app = create_app(factory)
    assert get(app, "/api/whoami").status_code == 200  # the token's first use is a `login`
    for i in range(10 - len(factory.audit.events())):  # the factory's start records some
        factory.audit.append(
            UnknownEvent(kind="engine-step", actor="a", payload={"i": i}, at=datetime.now(UTC))
        )

    keys = get(app, "/.well-known/jwks.json").json()["keys"]
    assert [k.get("iss") or k.get("sub") for k in keys] == [
        "codefactory:local",
        factory.settings.agent_id,
    ]

    signed = get(app, "/api/audit/checkpoint").json()
    issuer_key = bytes.fromhex(factory.identity.issuer.public_keys()[0].public_key.hex())
    verifier = NoteVerifier(name=signed["origin"], public_key=issuer_key)
    assert signed["verifier_key"] == verifier.encoded()
    checkpoint, _ = open_checkpoint(signed["note"], origin=signed["origin"], verifiers=[verifier])
    assert checkpoint.size == signed["size"] == 10

    proof = get(app, "/api/audit/proofs/inclusion?index=3&size=10").json()
    verify_inclusion(
        3, 10, bytes.fromhex(proof["leaf_hash"]),
        [bytes.fromhex(h) for h in proof["inclusion_path"]], checkpoint.root,
    )  # fmt: skip
    consistency = get(app, "/api/audit/proofs/consistency?first=4&second=10").json()
    verify_consistency(
        4, 10, [bytes.fromhex(h) for h in consistency["consistency_path"]],
        bytes.fromhex(consistency["first_root_hash"]), checkpoint.root,
    )  # fmt: skip
    bad = get(app, "/api/audit/proofs/inclusion?index=3&size=99")
    assert bad.status_code == 400 and "no tree of size 99" in bad.json()["detail"]
    assert "/.well-known/jwks.json" in get(app, "/openapi.json").json()["paths"]
