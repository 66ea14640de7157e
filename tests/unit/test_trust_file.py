"""The pinned trust file: what `identity trust-export` writes reads back the same, and a file
that is malformed, inconsistent or inside the data folder is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from codefactory.audit.note import NoteVerifier
from codefactory.identity.errors import TrustInvalid
from codefactory.identity.jwk import thumbprint
from codefactory.identity.port import IssuerKey
from codefactory.identity.signer_ssh import openssh_public_key
from codefactory.identity.trust import TrustRoots, load_trust, render_trust


def raw_key() -> bytes:
    return Ed25519PrivateKey.generate().public_key().public_bytes_raw()


def roots() -> TrustRoots:
    current, retired, agent = raw_key(), raw_key(), raw_key()
    return TrustRoots(
        issuer="codefactory:bank",
        signer="pkcs11",
        issuer_keys=(
            IssuerKey(kid=thumbprint(current), public_key=current, created_at="2026-11-29"),
            IssuerKey(
                kid=thumbprint(retired), public_key=retired, created_at="", retired_at="2026-11-01"
            ),
        ),
        checkpoint_keys=tuple(
            NoteVerifier(name="codefactory.bank/audit", public_key=key).encoded()
            for key in (current, retired)
        ),
        agent_keys={"agent:bot": openssh_public_key(agent, "agent:bot")},
    )


def test_an_exported_trust_file_reads_back_as_it_was_written(tmp_path: Path) -> None:
    written = roots()
    path = tmp_path / "etc" / "trust.toml"
    path.parent.mkdir()
    path.write_text(render_trust(written))
    read = load_trust(path, data_dir=tmp_path / "data")
    assert read.issuer_keys == written.issuer_keys
    assert read.current_issuer_kid == written.issuer_keys[0].kid
    assert read.checkpoint_keys == written.checkpoint_keys
    assert read.raw_checkpoint_keys() == [key.public_key for key in written.issuer_keys]
    assert read.agent_keys == written.agent_keys
    assert read.agent_public_key("agent:bot") is not None
    assert read.agent_public_key("agent:other") is None
    assert (read.issuer, read.signer, read.path) == ("codefactory:bank", "pkcs11", path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda text, kid: text.replace(f'kid = "{kid}"', 'kid = "not-its-kid"', 1), "match"),
        (lambda text, kid: text.replace('status = "retired"', 'status = "current"'), "current"),
        (lambda text, kid: text.replace('status = "retired"', 'status = "maybe"'), "status"),
        (lambda text, kid: text.replace("ssh-ed25519 AAAA", "ssh-ed25519 BBBB"), "malformed"),
        (lambda text, kid: text.replace("codefactory.bank/audit+", "x+00"), "malformed"),
        (lambda text, kid: text.replace('issuer = "codefactory:bank"\n', ""), "issuer"),
        (lambda text, kid: text + "[[", "malformed"),
    ],
)
def test_a_malformed_or_inconsistent_trust_file_is_refused(
    tmp_path: Path, edit: object, message: str
) -> None:
    written = roots()
    path = tmp_path / "trust.toml"
    assert callable(edit)
    path.write_text(edit(render_trust(written), written.issuer_keys[0].kid))
    with pytest.raises(TrustInvalid, match=message):
        load_trust(path, data_dir=tmp_path / "data")


def test_a_trust_file_in_the_data_folder_or_missing_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "etc").mkdir(parents=True)
    inside = data / "etc" / "trust.toml"
    inside.write_text(render_trust(roots()))
    with pytest.raises(TrustInvalid, match="inside the data folder"):
        load_trust(inside, data_dir=data)
    link = tmp_path / "trust.toml"
    link.symlink_to(inside)  # another name for a file in the data folder
    with pytest.raises(TrustInvalid, match="inside the data folder"):
        load_trust(link, data_dir=data)
    with pytest.raises(TrustInvalid, match="cannot be read"):
        load_trust(tmp_path / "absent.toml", data_dir=data)
