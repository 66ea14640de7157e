"""OpenSSH signatures (the `SSHSIG` format `git` uses with `gpg.format=ssh`), made and checked
by the real `ssh-keygen -Y sign|check-novalidate|find-principals|verify`.

A signature covers a message and a namespace (`codefactory-review`, `codefactory-governance`):
one made for a review never counts as a governance act. Allowed-signers lines follow
ssh-keygen(1) ALLOWED SIGNERS: `principal namespaces="ns" keytype base64 [comment]`.
"""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from codefactory.identity.errors import IdentityError

REVIEW_NAMESPACE = "codefactory-review"
"""The namespace of a reviewer's verdict."""
GOVERNANCE_NAMESPACE = "codefactory-governance"
"""The namespace of a governance act (suspending an agent, approving a policy)."""
TIMEOUT_S = 30.0
"""Wall-clock limit of one ssh-keygen run (signing through ssh-agent included)."""

_FINGERPRINT = re.compile(r"key (SHA256:[A-Za-z0-9+/]+)")


class SshSignatureError(IdentityError):
    """ssh-keygen could not sign, or a signature does not verify; the message says which and
    carries ssh-keygen's own words."""


def ssh_keygen() -> str:
    """The path of `ssh-keygen`; `SshSignatureError` when it is not installed (fail closed)."""
    found = shutil.which("ssh-keygen")
    if found is None:
        raise SshSignatureError("ssh-keygen is not installed (Debian: openssh-client)")
    return found


def key_fingerprint(public_key_line: str) -> str:
    """`SHA256:<base64, unpadded>` of an OpenSSH public key line, as `ssh-keygen -l` prints it;
    ValueError for a line that is not `keytype base64 [comment]`."""
    parts = public_key_line.split()
    if len(parts) < 2:
        raise ValueError("not an OpenSSH public key line")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except ValueError as err:
        raise ValueError(f"not an OpenSSH public key line: {err}") from err
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii").rstrip("=")
    return f"SHA256:{digest}"


def allowed_signers_line(principal: str, public_key_line: str, namespace: str) -> str:
    """One allowed-signers line: `principal namespaces="ns" keytype base64` (comment dropped)."""
    keytype, blob = public_key_line.split()[:2]
    return f'{principal} namespaces="{namespace}" {keytype} {blob}'


def sign(message: bytes, key: Path, namespace: str) -> str:
    """The armored SSH signature (`-----BEGIN SSH SIGNATURE-----`) of `message`, made with
    `ssh-keygen -Y sign -f KEY -n NAMESPACE`. `key` is a private key file, or a public key file
    whose private half ssh-agent holds (`SSH_AUTH_SOCK`). Never prompts: a key with a
    passphrase must be in ssh-agent. Raises `SshSignatureError` with ssh-keygen's words."""
    if not key.is_file():
        raise SshSignatureError(f"key {key}: no such file")
    with tempfile.TemporaryDirectory(prefix="codefactory-sign-") as scratch:
        target = Path(scratch) / "statement.json"
        target.write_bytes(message)
        _run(["-Y", "sign", "-f", str(key), "-n", namespace, str(target)], what=f"sign with {key}")
        return target.with_name("statement.json.sig").read_text(encoding="ascii")


def signing_key_fingerprint(message: bytes, signature: str, namespace: str) -> str:
    """The fingerprint of the key that made `signature` over `message` in `namespace`
    (`ssh-keygen -Y check-novalidate`: the signature is checked, the signer is not);
    `SshSignatureError` when it does not verify."""
    with tempfile.TemporaryDirectory(prefix="codefactory-verify-") as scratch:
        sig = _write_signature(Path(scratch), signature)
        out = _run(
            ["-Y", "check-novalidate", "-n", namespace, "-s", str(sig)],
            what="check the signature",
            stdin=message,
        )
    found = _FINGERPRINT.search(out)
    if found is None:
        raise SshSignatureError(f"ssh-keygen named no key: {out.strip()[:200]}")
    return found.group(1)


def verify(
    message: bytes,
    signature: str,
    *,
    allowed_signers: Sequence[str],
    principal: str,
    namespace: str,
) -> str:
    """Check `signature` as `ssh-keygen -Y verify -f ALLOWED_SIGNERS -I PRINCIPAL -n NAMESPACE
    -s SIG < MESSAGE` does, with the lines written to a temporary file; returns the key's
    fingerprint. `SshSignatureError` unless ssh-keygen says the signature is good."""
    with tempfile.TemporaryDirectory(prefix="codefactory-verify-") as scratch:
        folder = Path(scratch)
        sig = _write_signature(folder, signature)
        signers = folder / "allowed_signers"
        signers.write_text("".join(line + "\n" for line in allowed_signers), encoding="utf-8")
        args = ["-Y", "verify", "-f", str(signers), "-I", principal, "-n", namespace]
        out = _run([*args, "-s", str(sig)], what=f"verify as {principal}", stdin=message)
    found = _FINGERPRINT.search(out)
    if not out.startswith("Good") or found is None:
        raise SshSignatureError(f"signature not verified: {out.strip()[:200]}")
    return found.group(1)


def _write_signature(folder: Path, signature: str) -> Path:
    if "-----BEGIN SSH SIGNATURE-----" not in signature:
        raise SshSignatureError("the signature is not an armored SSH signature")
    target = folder / "statement.json.sig"
    target.write_text(signature, encoding="ascii", errors="strict")
    return target


def _run(args: list[str], *, what: str, stdin: bytes | None = None) -> str:
    try:
        done = subprocess.run(  # noqa: S603 - ssh-keygen with arguments we build
            [ssh_keygen(), *args],
            input=stdin if stdin is not None else b"",
            capture_output=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as err:
        raise SshSignatureError(f"ssh-keygen could not {what}: timed out") from err
    if done.returncode != 0:
        words = (done.stderr or done.stdout).decode("utf-8", "replace").strip()[:300]
        raise SshSignatureError(f"ssh-keygen could not {what}: {words or 'no output'}")
    return (done.stdout + done.stderr).decode("utf-8", "replace")
