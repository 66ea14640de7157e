"""The `Signer` port on a real SoftHSM2 token: keys made non-extractable in the token, Ed25519
signatures that standard verifiers accept, and every unavailable HSM failing closed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import SecretStr

from codefactory.identity.errors import SignerUnavailable
from codefactory.identity.pkcs11 import Pkcs11Keyring
from codefactory.identity.pkcs11_keys import TokenAgentKeys, TokenIssuer
from codefactory.identity.settings import Pkcs11Settings
from codefactory.identity.signer_ssh import openssh_public_key, sshsig
from tests.softhsm_helpers import softhsm_token


@pytest.fixture
def token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Pkcs11Settings:
    return softhsm_token(tmp_path / "hsm", monkeypatch)


def test_a_key_made_in_the_token_signs_and_never_leaves_it(token: Pkcs11Settings) -> None:
    from pkcs11 import Attribute, ObjectClass
    from pkcs11.exceptions import AttributeSensitive

    keyring = Pkcs11Keyring(token)
    signer = keyring.create("codefactory-issuer")
    public = signer.public_key()
    signature = signer.sign(b"checkpoint")
    Ed25519PublicKey.from_public_bytes(public).verify(signature, b"checkpoint")
    with pytest.raises(InvalidSignature):
        Ed25519PublicKey.from_public_bytes(public).verify(signature, b"another")
    with keyring.session() as session:
        private = session.get_key(label="codefactory-issuer", object_class=ObjectClass.PRIVATE_KEY)
        assert private[Attribute.EXTRACTABLE] is False
        assert private[Attribute.SENSITIVE] is True
        assert private[Attribute.NEVER_EXTRACTABLE] is True
        with pytest.raises(AttributeSensitive):
            private[Attribute.VALUE]
    assert keyring.signer("codefactory-issuer").key_id == signer.key_id  # found by label
    with pytest.raises(SignerUnavailable, match="exists"):
        keyring.create("codefactory-issuer")  # never replaced on a guess


def test_an_sshsig_made_in_the_token_verifies_with_ssh_keygen(
    token: Pkcs11Settings, tmp_path: Path
) -> None:
    signer = Pkcs11Keyring(token).create("codefactory-agent-agent:bot")
    message = tmp_path / "message"
    message.write_bytes(b"tree 0000\n\nfix\n")
    (tmp_path / "message.sig").write_text(sshsig(signer, message.read_bytes(), "git"))
    allowed = tmp_path / "allowed_signers"
    line = openssh_public_key(signer.public_key())
    allowed.write_text(f'bot@agents namespaces="git" {line}\n')
    verified = subprocess.run(
        ["ssh-keygen", "-Y", "verify", "-f", str(allowed), "-I", "bot@agents", "-n", "git"]
        + ["-s", str(tmp_path / "message.sig")],
        input=message.read_bytes(),
        capture_output=True,
        check=False,
    )
    assert verified.returncode == 0, verified.stderr
    wrong_namespace = subprocess.run(
        ["ssh-keygen", "-Y", "verify", "-f", str(allowed), "-I", "bot@agents", "-n", "file"]
        + ["-s", str(tmp_path / "message.sig")],
        input=message.read_bytes(),
        capture_output=True,
        check=False,
    )
    assert wrong_namespace.returncode != 0


def test_the_issuer_rotates_inside_the_token(token: Pkcs11Settings) -> None:
    issuer = TokenIssuer(Pkcs11Keyring(token), name="codefactory:test")
    with pytest.raises(SignerUnavailable, match="no public key labelled 'codefactory-issuer'"):
        issuer.sign(b"x")  # no key is made on a guess while signing
    first = issuer.ensure_key()
    assert issuer.ensure_key() == first
    second = issuer.rotate()
    keys = issuer.public_keys()
    assert [k.kid for k in keys] == [second.kid, first.kid]
    assert keys[0].retired_at is None and keys[1].retired_at is not None
    signed = issuer.sign(b"token")
    assert signed.kid == second.kid
    Ed25519PublicKey.from_public_bytes(second.public_key).verify(signed.signature, b"token")
    agents = TokenAgentKeys(Pkcs11Keyring(token))
    key = agents.create("agent:bot", comment="agent:bot")
    assert agents.create("agent:bot", comment="again").public_key == key.public_key
    assert agents.agent_ids() == ["agent:bot"]
    assert key.openssh.endswith(" agent:bot")


def test_an_unavailable_hsm_fails_closed_naming_the_setting(
    token: Pkcs11Settings, tmp_path: Path
) -> None:
    Pkcs11Keyring(token).create("k")
    cases = [
        (token.model_copy(update={"pin": SecretStr("0000")}), "identity.pkcs11.pin: the PIN"),
        (token.model_copy(update={"token_label": "absent"}), "identity.pkcs11.token_label: no"),
        (token.model_copy(update={"library": tmp_path / "x.so"}), "identity.pkcs11.library: no"),
        (token.model_copy(update={"pin": None}), "identity.pkcs11.pin: no PIN"),
        (
            token.model_copy(update={"pin": None, "pin_file": tmp_path / "absent"}),
            "identity.pkcs11.pin_file: cannot read",
        ),
    ]
    for settings, message in cases:
        with pytest.raises(SignerUnavailable, match=message) as caught:
            Pkcs11Keyring(settings).signer("k").sign(b"x")
        assert "0000" not in str(caught.value) and "4321" not in str(caught.value)
    with pytest.raises(SignerUnavailable, match="token_label: the token .* has no public key"):
        Pkcs11Keyring(token).signer("missing")
    pin_file = tmp_path / "pin"
    pin_file.write_text((token.pin.get_secret_value() if token.pin else "") + "\n")
    from_file = token.model_copy(update={"pin": None, "pin_file": pin_file})
    assert len(Pkcs11Keyring(from_file).signer("k").sign(b"x")) == 64
