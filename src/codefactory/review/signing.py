"""Commit signing with each agent's own SSH key, done by the factory outside the sandbox.

git signs with `gpg.format=ssh`: `user.signingkey` is the agent's private key file and git
runs `ssh-keygen -Y sign -n git` over the commit. Anyone with the `allowed_signers` file
(`codefactory identity allowed-signers`) checks it with plain `git verify-commit`.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from codefactory.review.errors import ForgeError

AGENT_EMAIL_DOMAIN = "@agents.codefactory.invalid"

# `git log --format=%G?` letters (git-log(1) PRETTY FORMATS).
SIGNATURE_STATUS = {
    "G": "good",
    "B": "bad",
    "U": "signed by a key not in allowed_signers (unknown signer)",
    "X": "good signature, expired",
    "Y": "good signature, expired key",
    "R": "good signature, revoked key",
    "E": "cannot be checked (unknown key or missing signer)",
    "N": "unsigned",
}


class CommitSigning(Protocol):
    """Which key signs a commit by `author_email`, if any."""

    def signing_key(self, author_email: str) -> Path | None: ...


class KeyFolder(Protocol):
    def private_key_path(self, agent_id: str) -> Path: ...


class AgentCommitSigning:
    """Agents' commits are signed with their key; other authors' commits are not signed."""

    def __init__(self, keys: KeyFolder) -> None:
        self._keys = keys

    def signing_key(self, author_email: str) -> Path | None:
        """The key file of the agent whose commit address (`AgentIdentity.email`) this is."""
        local, _, domain = author_email.partition("@")
        if "@" + domain != AGENT_EMAIL_DOMAIN or not local.startswith("agent-"):
            return None
        path = self._keys.private_key_path("agent:" + local.removeprefix("agent-"))
        if not path.is_file():
            raise ForgeError(f"no signing key for {author_email} at {path}")
        return path


def signing_config(key: Path) -> list[str]:
    """`git -c` options that make `commit-tree -S` sign with the SSH key file `key`."""
    program = shutil.which("ssh-keygen")
    if program is None:
        raise ForgeError("ssh-keygen is not installed: agents' commits cannot be signed")
    return [
        "-c",
        "gpg.format=ssh",
        "-c",
        f"gpg.ssh.program={program}",
        "-c",
        f"user.signingkey={key}",
    ]


def verification_config(allowed_signers: Path) -> list[str]:
    """`git -c` options that check SSH signatures against an `allowed_signers` file."""
    program = shutil.which("ssh-keygen") or "ssh-keygen"
    return [
        "-c",
        f"gpg.ssh.program={program}",
        "-c",
        f"gpg.ssh.allowedSignersFile={allowed_signers}",
    ]


@dataclass(frozen=True, kw_only=True)
class CommitSignature:
    """What git says about a commit's signature."""

    commit: str
    status: str
    """git's `%G?` letter: G good, B bad, N unsigned, E cannot be checked, …"""
    signer: str
    """The principal from allowed_signers (the agent's commit address)."""
    fingerprint: str

    @property
    def good(self) -> bool:
        return self.status == "G"

    def describe(self) -> str:
        text = SIGNATURE_STATUS.get(self.status, f"status {self.status}")
        return f"{text}, signed by {self.signer} ({self.fingerprint})" if self.signer else text
