"""Commit signing with each agent's own SSH key, done by the factory outside the sandbox.

The agent's key is a `Signer` (in an HSM token, or a key file in development mode): the
factory writes the commit object, signs its bytes as an OpenSSH `SSHSIG` in namespace `git`
(`identity.signer_ssh`) and stores it in the commit's `gpgsig` header, exactly as git's
`gpg.format=ssh` would; no private key file is needed. Anyone with the `allowed_signers` file
(`codefactory identity allowed-signers`) checks it with plain `git verify-commit`.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from codefactory.identity.errors import KeyUnavailable
from codefactory.identity.signer import Signer
from codefactory.identity.signer_ssh import sshsig
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

    def signer(self, author_email: str) -> Signer | None: ...


class AgentSigners(Protocol):
    def signer(self, agent_id: str) -> Signer: ...


class AgentCommitSigning:
    """Agents' commits are signed with their key; other authors' commits are not signed."""

    def __init__(self, keys: AgentSigners) -> None:
        self._keys = keys

    def signer(self, author_email: str) -> Signer | None:
        """The key of the agent whose commit address (`AgentIdentity.email`) this is;
        `ForgeError` when the agent has no usable key (never an unsigned agent commit)."""
        local, _, domain = author_email.partition("@")
        if "@" + domain != AGENT_EMAIL_DOMAIN or not local.startswith("agent-"):
            return None
        agent_id = "agent:" + local.removeprefix("agent-")
        try:
            signer = self._keys.signer(agent_id)
            signer.public_key()
        except KeyUnavailable as error:
            raise ForgeError(f"no signing key for {author_email}: {error}") from error
        return signer


def signed_commit(commit: bytes, signer: Signer) -> bytes:
    """The commit object `commit` (git's raw `cat-file commit` bytes, unsigned) with a
    `gpgsig` header holding the SSHSIG of those bytes, as `git commit -S` with
    `gpg.format=ssh` writes it (git's commit.c: the header goes after `committer`)."""
    try:
        armored = sshsig(signer, commit)
    except KeyUnavailable as error:
        raise ForgeError(f"the agent's key cannot sign: {error}") from error
    header, separator, message = commit.partition(b"\n\n")
    if not separator:
        raise ForgeError("not a commit object: no blank line after its headers")
    value = armored.rstrip("\n").replace("\n", "\n ")
    return header + b"\ngpgsig " + value.encode() + b"\n\n" + message


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
