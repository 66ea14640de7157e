"""Delegation scopes, JWK thumbprints and JWS verification, against RFC 8037's vectors."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st
from jwt.exceptions import InvalidSignatureError

from codefactory.identity.agents import (
    AgentIdentity,
    AgentStatus,
    StaticAgentDirectory,
    check_agent_id,
)
from codefactory.identity.errors import AgentInvalid, AgentUnavailable
from codefactory.identity.jwk import b64url, okp_jwk, thumbprint
from codefactory.identity.scope import RUN_ACTIONS, Scope, grant
from codefactory.identity.settings import DEFAULT_SCOPE_PATHS
from codefactory.identity.tokens import _JWS

# RFC 8037 appendix A.1 (the Ed25519 key), A.3 (its thumbprint), A.4 (a JWS it signed).
RFC8037_D = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
RFC8037_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
RFC8037_THUMBPRINT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
RFC8037_JWS = (
    "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc."
    "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
)


def b64url_decode(text: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def rfc8037_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(b64url_decode(RFC8037_D))


def test_thumbprints_follow_rfc_7638_and_8037() -> None:
    public = rfc8037_key().public_key().public_bytes_raw()
    assert b64url(public) == RFC8037_X
    assert thumbprint(public) == RFC8037_THUMBPRINT
    jwk = okp_jwk(public, sub="agent:x")
    assert jwk == {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": RFC8037_X,
        "kid": RFC8037_THUMBPRINT,
        "use": "sig",
        "alg": "Ed25519",
        "sub": "agent:x",
    }


def test_the_verifier_accepts_rfc_8037s_eddsa_jws_and_rfc_9864s_name() -> None:
    public = rfc8037_key().public_key()
    verified = _JWS.decode_complete(RFC8037_JWS, key=public, algorithms=["Ed25519", "EdDSA"])
    assert verified["payload"] == b"Example of Ed25519 signing"
    signing_input = b"eyJhbGciOiJFZDI1NTE5In0.eA"  # {"alg":"Ed25519"} . "x"
    signature = b64url(rfc8037_key().sign(signing_input))
    token = signing_input.decode() + "." + signature
    assert _JWS.decode_complete(token, key=public, algorithms=["Ed25519"])["payload"] == b"x"
    with pytest.raises(InvalidSignatureError):
        forged = (
            signing_input.decode() + "." + ("B" if signature[0] == "A" else "A") + signature[1:]
        )
        _JWS.decode_complete(forged, key=public, algorithms=["Ed25519"])


# --- scopes -----------------------------------------------------------------------------


def test_a_grant_names_repository_actions_and_paths_as_scope_tokens() -> None:
    scope = grant(repository="payments api", kind="fix_lint", scope_paths=DEFAULT_SCOPE_PATHS)
    assert scope.actions == ("change:fix_lint", *RUN_ACTIONS)
    claim = scope.to_claim()
    assert claim.startswith("repository:payments%20api change:fix_lint engine:propose ")
    assert "path:**/*.py" in claim.split(" ")
    assert Scope.from_claim(claim) == scope
    other = grant(repository="r", kind="general_change", scope_paths=DEFAULT_SCOPE_PATHS)
    assert other.paths == ("**",)


@pytest.mark.parametrize(
    ("path", "inside"),
    [
        ("app.py", True),
        ("service/deep/x.py", True),
        ("service/x.pyc", False),
        ("README.md", False),
        (".github/workflows/ci.yml", False),
    ],
)
def test_path_globs(path: str, inside: bool) -> None:
    scope = grant(repository="r", kind="fix_lint", scope_paths=DEFAULT_SCOPE_PATHS)
    assert (scope.outside([path]) == []) is inside


def test_single_star_stays_in_a_segment() -> None:
    scope = Scope(repository="r", actions=(), paths=("requirements*.txt", "docs/?.md"))
    assert scope.outside(["requirements-dev.txt", "docs/a.md", "a/requirements.txt"]) == [
        "a/requirements.txt"
    ]


@pytest.mark.parametrize("claim", [None, 3, "change:x path:y"])
def test_scopes_this_factory_did_not_write_are_refused(claim: object) -> None:
    with pytest.raises(ValueError):
        Scope.from_claim(claim)


@given(
    st.text(alphabet=st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=12),
    st.lists(st.text(alphabet="abc*/?._-", min_size=1, max_size=8), max_size=4),
)
def test_scope_claims_round_trip(repository: str, paths: list[str]) -> None:
    scope = Scope(repository=repository, actions=("forge:commit",), paths=tuple(paths))
    assert Scope.from_claim(scope.to_claim()) == scope


# --- agents -----------------------------------------------------------------------------


@pytest.mark.parametrize("agent_id", ["agent:codefactory-recipes", "agent:a.b_c-1"])
def test_agent_ids(agent_id: str) -> None:
    assert check_agent_id(agent_id) == agent_id


@pytest.mark.parametrize(
    "agent_id", ["codefactory", "agent:", "agent:Upper", "agent:a b", "agent:../x"]
)
def test_bad_agent_ids(agent_id: str) -> None:
    with pytest.raises(AgentInvalid, match="invalid agent id"):
        check_agent_id(agent_id)


def test_an_agent_may_use_only_its_engines_and_acts_only_when_active() -> None:
    agent = AgentIdentity(
        id="agent:bot", display_name="Bot", issuer="i", owner="o", engines=("recipe:*",)
    )
    assert agent.may_use("recipe:lint-fix") and not agent.may_use("llm:gpt")
    assert agent.email == "agent-bot@agents.codefactory.invalid"
    directory = StaticAgentDirectory(
        [
            agent,
            AgentIdentity(
                id="agent:off", display_name="", issuer="i", owner="o", status=AgentStatus.SUSPENDED
            ),
        ]  # fmt: skip
    )
    assert directory.require_active("agent:bot") == agent
    with pytest.raises(AgentUnavailable, match="agent:off is suspended"):
        directory.require_active("agent:off")
    with pytest.raises(AgentUnavailable, match="is unknown"):
        directory.require_active("agent:nobody")
