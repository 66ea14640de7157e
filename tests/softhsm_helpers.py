"""A SoftHSM2 token per test: its own configuration and token folder under the test's tmp
folder (`SOFTHSM2_CONF` points there), initialised with the real `softhsm2-util`.

`softhsm_token(folder, monkeypatch)` returns the `identity.pkcs11` settings of a fresh token;
the fixture skips with the reason when SoftHSM2 is not installed (`make system-packages`).
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from pydantic import SecretStr

from codefactory.identity.settings import Pkcs11Settings

SOFTHSM_LIBRARY = Path("/usr/lib/softhsm/libsofthsm2.so")
USER_PIN = "4321-user"
SO_PIN = "8765-so"


def softhsm_token(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Pkcs11Settings:
    """A fresh token labelled `cf-<random>` in a SoftHSM2 store under `folder`."""
    if not SOFTHSM_LIBRARY.is_file() or shutil.which("softhsm2-util") is None:
        pytest.skip("SoftHSM2 is not installed (apt-get install softhsm2)")
    tokens = folder / "tokens"
    tokens.mkdir(parents=True)
    conf = folder / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    label = f"cf-{uuid.uuid4().hex[:12]}"
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", label]
        + ["--pin", USER_PIN, "--so-pin", SO_PIN],
        check=True,
        capture_output=True,
    )
    return Pkcs11Settings(library=SOFTHSM_LIBRARY, token_label=label, pin=SecretStr(USER_PIN))
