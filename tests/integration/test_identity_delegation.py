"""Delegation tokens on a real store and real keys: issued, checked, and every bad token named."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.orm import Session

from codefactory.domain import Run
from codefactory.identity import AgentStatus, DelegationRefused, IdentityError
from codefactory.identity.keyfiles import Ed25519KeyFiles
from codefactory.identity.published import jwks
from codefactory.identity.tokens import sign_token
from codefactory.store.identity_tables import DelegationTokenRow
from tests.integration.test_identity_registry import Governance, make_governance


@pytest.fixture
def governance(tmp_path: Path) -> Governance:
    return make_governance(tmp_path / "data")


def issue(governance: Governance, run: Run) -> str:
    agent = governance.identity.agents.require_active(run.agent_id)
    with governance.store.atomic() as tx:
        return governance.identity.delegation.issue(run, agent, session=tx.session).token


def store_token(governance: Governance, run: Run, token: str) -> None:
    """Replace the run's stored token, as someone with write access to the database could."""
    with Session(governance.store.engine) as session, session.begin():
        row = session.query(DelegationTokenRow).filter_by(run_id=run.id).one()
        row.token = token


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(jwt.utils.base64url_decode(payload))  # type: ignore[no-any-return]


def refused(governance: Governance, run: Run, **kwargs: Any) -> DelegationRefused:
    kwargs.setdefault("action", "forge:commit")
    with pytest.raises(DelegationRefused) as caught:
        governance.identity.delegation.check(run, **kwargs)
    last = governance.audit.events(run.id)[-1]
    assert last.name == "delegation-refused"
    assert last.data["reason"] == caught.value.reason
    return caught.value


def test_a_token_names_issuer_sponsor_agent_audience_scope_run_and_lifetime(
    governance: Governance,
) -> None:
    run = governance.new_run()
    token = issue(governance, run)
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "Ed25519" and header["typ"] == "delegation+jwt"
    claims = claims_of(token)
    assert {k: claims[k] for k in ("iss", "sub", "act", "aud", "run_id")} == {
        "iss": "codefactory:local",
        "sub": "priya.shah",
        "act": {"sub": "agent:codefactory-recipes"},
        "aud": "codefactory:run",
        "run_id": run.id,
    }
    assert claims["exp"] - claims["iat"] == governance.settings.identity.token_ttl_s
    assert claims["scope"].startswith("repository:/srv/repos/sample-service change:fix_lint ")
    issued = governance.audit.events(run.id)[-1]
    assert issued.name == "delegation-issued"
    assert issued.data["claims"] == claims and issued.data["kid"] == header["kid"]
    assert issued.data["token_sha256"] == hashlib.sha256(token.encode()).hexdigest()
    assert token not in json.dumps(issued.data)  # the bearer token stays out of the log


def test_anyone_verifies_a_token_with_pyjwt_and_the_published_jwks(governance: Governance) -> None:
    run = governance.new_run()
    token = issue(governance, run)
    identity = governance.identity
    document = jwks(identity.issuer.name, identity.issuer.public_keys(), identity.agents.search())
    kid = jwt.get_unverified_header(token)["kid"]
    entry = next(k for k in document["keys"] if k["kid"] == kid)
    key = jwt.PyJWK({**entry, "alg": "EdDSA"}).key
    verifier = jwt.PyJWT()
    verifier._jws.register_algorithm("Ed25519", jwt.algorithms.OKPAlgorithm())
    decoded = verifier.decode(
        token,
        key,
        algorithms=["Ed25519"],
        audience="codefactory:run",
        issuer="codefactory:local",
    )
    assert decoded["act"] == {"sub": run.agent_id}


def test_a_valid_token_is_checked_and_the_check_audited(governance: Governance) -> None:
    run = governance.new_run()
    issue(governance, run)
    claims = governance.identity.delegation.check(
        run, action="forge:commit", paths=["service/a.py", "b.py"]
    )
    assert claims["run_id"] == run.id
    checked = governance.audit.events(run.id)[-1]
    assert checked.name == "delegation-checked" and checked.actor == "factory:forge"
    assert checked.data == {
        "jti": claims["jti"],
        "action": "forge:commit",
        "paths": ["service/a.py", "b.py"],
    }


def test_a_token_issued_before_a_key_rotation_still_verifies(governance: Governance) -> None:
    run = governance.new_run()
    issue(governance, run)
    governance.identity.issuer.rotate()
    governance.identity.delegation.check(run, action="engine:propose")


def test_an_eddsa_token_is_accepted(governance: Governance, tmp_path: Path) -> None:
    run = governance.new_run()
    claims = claims_of(issue(governance, run))
    key = governance.identity.issuer.public_keys()[0]
    pem = tmp_path / "data" / "keys" / "issuer" / f"{key.kid}.pem"
    private = serialization.load_pem_private_key(pem.read_bytes(), password=None)
    headers = {"kid": key.kid, "typ": "delegation+jwt"}
    store_token(governance, run, jwt.encode(claims, private, algorithm="EdDSA", headers=headers))  # type: ignore[arg-type]
    governance.identity.delegation.check(run, action="engine:propose")


def test_an_expired_token_is_refused(governance: Governance) -> None:
    run = governance.new_run()
    issue(governance, run)
    later = datetime.now(UTC) + timedelta(seconds=governance.settings.identity.token_ttl_s + 1)
    error = refused(governance, run, at=later)
    assert "expired at" in error.reason and error.run_id == run.id and error.jti


def test_a_forged_token_is_refused(governance: Governance) -> None:
    run = governance.new_run()
    token = issue(governance, run)
    header, payload, signature = token.split(".")
    claims = {**claims_of(token), "sub": "ceo"}
    forged_payload = jwt.utils.base64url_encode(json.dumps(claims).encode()).decode()
    store_token(governance, run, f"{header}.{forged_payload}.{signature}")
    assert "its signature does not verify: forged or altered" in refused(governance, run).reason


def test_a_token_signed_by_an_unknown_key_is_refused(
    governance: Governance, tmp_path: Path
) -> None:
    run = governance.new_run()
    claims = claims_of(issue(governance, run))
    stranger = Ed25519KeyFiles(tmp_path / "stranger", name="codefactory:local")
    store_token(governance, run, sign_token(claims, stranger)[0])
    assert "signed by an unknown key" in refused(governance, run).reason


def test_a_token_for_another_run_is_refused(governance: Governance) -> None:
    run, other = governance.new_run(), governance.new_run()
    issue(governance, run)
    store_token(governance, run, issue(governance, other))
    assert refused(governance, run).reason == f"the token is for run {other.id}, not {run.id}"


def test_a_revoked_token_is_refused(governance: Governance) -> None:
    run = governance.new_run()
    jti = claims_of(issue(governance, run))["jti"]
    assert governance.identity.delegation.revoke(jti, actor="user:sec", reason="leaked") == run.id
    assert governance.names(run.id)[-1] == "delegation-revoked"
    assert "was revoked at" in refused(governance, run).reason
    with pytest.raises(IdentityError, match="no delegation token"):
        governance.identity.delegation.revoke("nope", actor="user:sec", reason="x")


def test_out_of_scope_acts_are_refused(governance: Governance) -> None:
    run = governance.new_run(kind="fix_lint")
    issue(governance, run)
    error = refused(governance, run, paths=["service/a.py", ".github/workflows/ci.yml"])
    assert error.reason == "outside the delegated paths: .github/workflows/ci.yml"
    error = refused(governance, run, action="forge:merge")
    assert error.reason.startswith("forge:merge was not granted (granted: change:fix_lint")


def test_a_suspended_agents_token_is_refused(governance: Governance) -> None:
    run = governance.new_run()
    issue(governance, run)
    governance.identity.agents.set_status(run.agent_id, AgentStatus.SUSPENDED, actor="user:sec")
    assert refused(governance, run).reason.endswith("is suspended and may not start runs")


def test_a_run_without_a_token_is_refused(governance: Governance) -> None:
    run = governance.new_run()
    error = refused(governance, run)
    assert (error.reason, error.jti) == ("no delegation token was issued for this run", "")
    assert governance.identity.delegation.token_for(run.id) is None
    assert governance.identity.delegation.inspect(run.id) is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"iss": "someone-else"}, "issued by 'someone-else', not this factory"),
        ({"aud": "other"}, "audience is 'other'"),
        ({"sub": "mallory"}, "acts for 'mallory', not the run's sponsor"),
        ({"act": {"sub": "agent:other"}}, "delegates to 'agent:other'"),
        ({"act": "agent:x"}, "delegates to None"),
        ({"exp": "soon"}, "no integer exp"),
        ({"nbf": 2**40}, "not valid before"),
        ({"scope": 7}, "scope is unreadable"),
        ({"scope": "repository:other forge:commit"}, "for repository other, not /srv/repos/"),
        ({"jti": "another"}, "carries jti 'another'"),
    ],
)
def test_each_claim_is_checked(governance: Governance, change: dict[str, Any], reason: str) -> None:
    run = governance.new_run()
    claims = {**claims_of(issue(governance, run)), **change}
    store_token(governance, run, sign_token(claims, governance.identity.issuer)[0])
    assert reason in refused(governance, run).reason


def test_malformed_tokens_are_refused(governance: Governance) -> None:
    run = governance.new_run()
    token = issue(governance, run)
    store_token(governance, run, "not.a.jwt")
    assert "not genuine: not a compact JWS" in refused(governance, run).reason
    header = jwt.utils.base64url_encode(json.dumps({"alg": "Ed25519", "typ": "JWT"}).encode())
    store_token(governance, run, header.decode() + "." + token.split(".", 1)[1])
    assert "token type 'JWT' is not 'delegation+jwt'" in refused(governance, run).reason
    identity = governance.identity
    kid = identity.issuer.public_keys()[0].kid
    none_header = {"alg": "none", "kid": kid, "typ": "delegation+jwt"}
    unsigned = jwt.utils.base64url_encode(json.dumps(none_header).encode()).decode()
    store_token(governance, run, unsigned + "." + token.split(".")[1] + ".")
    assert "not genuine" in refused(governance, run).reason
    inspected = identity.delegation.inspect(run.id)
    assert inspected is not None and inspected["signature"].startswith("invalid:")
    assert identity.delegation.token_for(run.id).claims == {}  # type: ignore[union-attr]


def test_inspect_shows_the_token_as_issued(governance: Governance) -> None:
    run = governance.new_run()
    token = issue(governance, run)
    governance.identity.delegation.revoke(claims_of(token)["jti"], actor="user:a", reason="r")
    inspected = governance.identity.delegation.inspect(run.id)
    assert inspected is not None
    assert (inspected["token"], inspected["signature"]) == (token, "valid")
    assert inspected["claims"] == claims_of(token) and inspected["revoked_reason"] == "r"
    Ed25519PublicKey.from_public_bytes(governance.identity.issuer.public_keys()[0].public_key)


def test_a_token_whose_payload_is_not_an_object_is_refused(governance: Governance) -> None:
    from codefactory.identity.tokens import TokenInvalid, open_token

    issuer = governance.identity.issuer
    kid = issuer.public_keys()[0].kid
    header = jwt.utils.base64url_encode(
        json.dumps({"alg": "Ed25519", "kid": kid, "typ": "delegation+jwt"}).encode()
    )
    signing_input = header + b"." + jwt.utils.base64url_encode(b"[1, 2]")
    signature = jwt.utils.base64url_encode(issuer.sign(signing_input).signature)
    with pytest.raises(TokenInvalid, match="payload is not a JSON object"):
        open_token((signing_input + b"." + signature).decode(), issuer.public_keys())


class RotatingIssuer(Ed25519KeyFiles):
    """Key files whose key rotates while the first token is being signed."""

    rotated = False

    def sign(self, message: bytes) -> Any:
        if not self.rotated:
            self.rotated = True
            self.rotate()
        return super().sign(message)


def test_a_rotation_while_signing_signs_again_with_the_new_key(tmp_path: Path) -> None:
    issuer = RotatingIssuer(tmp_path / "issuer", name="codefactory:test")
    first = issuer.public_keys()[0].kid
    token, kid = sign_token({"x": 1}, issuer)
    assert kid != first and jwt.get_unverified_header(token)["kid"] == kid
