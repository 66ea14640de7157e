"""Key custody through the CLI: `identity trust-export`, the development-mode banner of
`audit verify`, PKCS#11 refusing to start unpinned or with a wrong PIN, and the data folder
kept to its owner (0700, files 0600, `factory.db` never world-readable)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from codefactory.cli import app
from codefactory.identity.settings import Pkcs11Settings
from tests.postgres_store import sqlite_store_only
from tests.softhsm_helpers import softhsm_token

Cli = Callable[..., tuple[str, str]]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    runner = CliRunner()

    def invoke(*args: str, code: int = 0) -> tuple[str, str]:
        result = runner.invoke(app, ["--data-dir", str(tmp_path / "data"), *args])
        assert result.exit_code == code, (args, result.output)
        return result.stdout, result.stderr

    return invoke


def use_token(monkeypatch: pytest.MonkeyPatch, token: Pkcs11Settings) -> None:
    monkeypatch.setenv("CODEFACTORY_IDENTITY__SIGNER", "pkcs11")
    monkeypatch.setenv("CODEFACTORY_IDENTITY__PKCS11__LIBRARY", str(token.library))
    monkeypatch.setenv("CODEFACTORY_IDENTITY__PKCS11__TOKEN_LABEL", token.token_label)
    assert token.pin is not None
    monkeypatch.setenv("CODEFACTORY_IDENTITY__PKCS11__PIN", token.pin.get_secret_value())


def test_development_mode_says_loudly_that_nothing_is_pinned_until_a_trust_file_is(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, err = cli("audit", "verify")
    assert "WARNING: keys not protected" in err and "no trust file pins" in err
    assert "audit log verified" in out
    trust = tmp_path / "etc" / "trust.toml"
    trust.parent.mkdir()
    cli("identity", "trust-export", "--output", str(trust))
    monkeypatch.setenv("CODEFACTORY_IDENTITY__TRUST_FILE", str(trust))
    custody = json.loads(cli("audit", "verify", "--json")[0])["key_custody"]
    assert (custody["signer"], custody["pinned"]) == ("development-key-files", True)
    assert "whoever reads those files can sign" in custody["warning"]
    published = json.loads(cli("identity", "jwks")[0])
    pinned = [line for line in trust.read_text().splitlines() if line.startswith("kid = ")]
    issuer_kids = [k["kid"] for k in published["keys"] if "iss" in k]
    assert [f'kid = "{kid}"' for kid in issuer_kids] == pinned


def test_pkcs11_refuses_to_start_unpinned_or_with_a_wrong_pin_and_runs_pinned(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = softhsm_token(tmp_path / "hsm", monkeypatch)
    use_token(monkeypatch, token)
    out, err = cli("audit", "verify", code=1)
    assert "identity.trust_file is unset" in err and "identity trust-export" in err
    trust = tmp_path / "etc" / "trust.toml"
    trust.parent.mkdir()
    cli("identity", "trust-export", "--output", str(trust))  # makes the keys in the token
    assert 'signer = "pkcs11"' in trust.read_text()
    monkeypatch.setenv("CODEFACTORY_IDENTITY__TRUST_FILE", str(trust))
    out, err = cli("audit", "verify", "--json")
    assert json.loads(out)["key_custody"] == {
        "signer": "pkcs11",
        "pinned": True,
        "trust_file": str(trust),
        "warning": None,
    }
    assert "keys not protected" not in cli("audit", "verify")[1]
    assert not list((tmp_path / "data").glob("keys/**/*.pem"))
    assert not list((tmp_path / "data").glob("keys/**/id_ed25519"))
    monkeypatch.setenv("CODEFACTORY_IDENTITY__PKCS11__PIN", "0000")
    out, err = cli("audit", "verify", code=1)
    assert "identity.pkcs11.pin: the PIN is wrong" in err and "0000" not in out + err


@sqlite_store_only  # the SQLite file's mode among the data folder's
def test_the_data_folder_is_its_owners_alone(
    cli: Cli, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)  # an older factory's folder, readable by all
    (data / "factory.db").touch(mode=0o644)
    (data / "factory.db").chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="codefactory"):
        cli("audit", "verify")
    assert "was mode 0755; set to 0700" in caplog.text
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for name in ("factory.db", "factory.db-wal", "factory.db-shm"):
        if (data / name).exists():
            assert stat.S_IMODE((data / name).stat().st_mode) == 0o600, name
    cli("identity", "allowed-signers")
    secrets = [*data.glob("keys/**/*.pem"), *data.glob("keys/**/id_ed25519")]
    assert secrets and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in secrets)
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o700 for p in data.glob("keys/**/"))
    if os.getuid() == 0 and shutil.which("setpriv"):  # another account reaches nothing inside
        for target in (data / "factory.db", data / "keys" / "allowed_signers"):
            other = subprocess.run(
                ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"]
                + ["cat", str(target)],
                capture_output=True,
                check=False,
            )
            assert other.returncode != 0 and b"Permission denied" in other.stderr
