"""Pinned trust roots (`identity.trust_file`): the public keys every verifier trusts.

A TOML file kept outside the data folder (written once by `codefactory identity trust-export`,
reviewed and installed by an operator) pins the issuer's keys (current and retired), the
audit checkpoints' note verifier keys (C2SP signed-note `name+hex(keyID)+base64(0x01‖key)`)
and each agent's SSH key. When it is set, a key added to `keys.json` or to the store in the
data folder verifies nothing and is never published; a signing key that is not the pinned
one refuses to sign.

    issuer = "codefactory:local"
    signer = "pkcs11"

    [[issuer_keys]]
    kid = "…"                 # RFC 7638 thumbprint
    public_key = "…"          # base64url of the raw 32-byte Ed25519 key
    status = "current"        # or "retired"

    [checkpoints]
    verifier_keys = ["<origin>+<hex key id>+<base64>"]

    [[agents]]
    id = "agent:codefactory-recipes"
    ssh_public_key = "ssh-ed25519 AAAA… agent:codefactory-recipes"
"""

from __future__ import annotations

import base64
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from codefactory.audit.note import parse_verifier
from codefactory.identity.errors import TrustInvalid
from codefactory.identity.jwk import b64url, thumbprint
from codefactory.identity.port import IssuerKey

SETTING = "identity.trust_file"


@dataclass(frozen=True, kw_only=True)
class TrustRoots:
    """The pinned public keys; `path` is the file they came from."""

    path: Path | None = None
    issuer: str
    signer: str = ""
    issuer_keys: tuple[IssuerKey, ...]
    """Current first, then retired."""
    checkpoint_keys: tuple[str, ...] = ()
    """C2SP note verifier keys of the audit checkpoints."""
    agent_keys: dict[str, str] = field(default_factory=dict)
    """Agent id → its pinned `ssh-ed25519 AAAA…` line."""

    @property
    def current_issuer_kid(self) -> str:
        """The kid of the one key that may sign as the issuer now."""
        return self.issuer_keys[0].kid if self.issuer_keys else ""

    def raw_checkpoint_keys(self) -> list[bytes]:
        """Raw Ed25519 keys of the pinned checkpoint verifiers."""
        return [parse_verifier(key).public_key for key in self.checkpoint_keys]

    def agent_public_key(self, agent_id: str) -> bytes | None:
        """The raw pinned key of `agent_id`, or None when the agent is not pinned."""
        line = self.agent_keys.get(agent_id)
        return None if line is None else ssh_raw_key(line)


def ssh_raw_key(line: str) -> bytes:
    """The raw Ed25519 key of an `ssh-ed25519 AAAA…` line (`ValueError` otherwise)."""
    key = serialization.load_ssh_public_key(line.encode())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an ssh-ed25519 key")
    return key.public_bytes_raw()


def load_trust(path: Path, *, data_dir: Path) -> TrustRoots:
    """Read and check the trust file; `TrustInvalid` when it is inside `data_dir`, unreadable
    or malformed (every key is parsed, every issuer kid checked against its key)."""
    resolved = path.expanduser().resolve()
    if resolved.is_relative_to(data_dir.resolve()):
        raise TrustInvalid(
            f"{SETTING} {resolved} is inside the data folder {data_dir}: whoever can write "
            "the data folder could change what is trusted; keep it elsewhere"
        )
    try:
        document = tomllib.loads(resolved.read_text(encoding="utf-8"))
        return _parse(document, resolved)
    except (OSError, UnicodeDecodeError) as error:
        raise TrustInvalid(f"{SETTING} {resolved} cannot be read: {error}") from error
    except (tomllib.TOMLDecodeError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise TrustInvalid(f"{SETTING} {resolved} is malformed: {error}") from error


def _parse(document: dict[str, Any], path: Path) -> TrustRoots:
    keys: list[IssuerKey] = []
    for entry in document.get("issuer_keys", []):
        raw = base64.urlsafe_b64decode(entry["public_key"] + "=" * (-len(entry["public_key"]) % 4))
        Ed25519PublicKey.from_public_bytes(raw)
        if thumbprint(raw) != entry["kid"]:
            raise ValueError(f"issuer key {entry['kid']} does not match its public key")
        if entry.get("status", "current") not in ("current", "retired"):
            raise ValueError(f"issuer key {entry['kid']}: status is current or retired")
        retired = entry.get("status", "current") == "retired"
        keys.append(
            IssuerKey(
                kid=entry["kid"],
                public_key=raw,
                created_at=str(entry.get("created_at", "")),
                retired_at=str(entry.get("retired_at", "")) if retired else None,
            )
        )
    if sum(1 for key in keys if key.retired_at is None) > 1:
        raise ValueError("more than one issuer key is current")
    keys.sort(key=lambda key: key.retired_at is not None)  # current first
    checkpoints = tuple(str(k) for k in document.get("checkpoints", {}).get("verifier_keys", []))
    for verifier in checkpoints:
        parse_verifier(verifier)
    agents = {str(a["id"]): str(a["ssh_public_key"]) for a in document.get("agents", [])}
    for line in agents.values():
        ssh_raw_key(line)
    return TrustRoots(
        path=path,
        issuer=str(document["issuer"]),
        signer=str(document.get("signer", "")),
        issuer_keys=tuple(keys),
        checkpoint_keys=checkpoints,
        agent_keys=agents,
    )


def render_trust(roots: TrustRoots) -> str:
    """The TOML text of `roots` (what `identity trust-export` prints)."""

    def quoted(text: str) -> str:
        return json.dumps(text, ensure_ascii=True)  # a TOML basic string

    lines = [
        "# Code Factory pinned trust roots (identity.trust_file). Keep this file outside the",
        "# data folder, owned by someone the factory's process cannot impersonate.",
        f"issuer = {quoted(roots.issuer)}",
        f"signer = {quoted(roots.signer)}",
    ]
    for key in roots.issuer_keys:
        status = "current" if key.retired_at is None else "retired"
        lines += [
            "",
            "[[issuer_keys]]",
            f"kid = {quoted(key.kid)}",
            f"public_key = {quoted(b64url(key.public_key))}",
            f"status = {quoted(status)}",
            f"created_at = {quoted(key.created_at)}",
        ]
        if key.retired_at is not None:
            lines.append(f"retired_at = {quoted(key.retired_at)}")
    lines += ["", "[checkpoints]", "verifier_keys = ["]
    lines += [f"  {quoted(key)}," for key in roots.checkpoint_keys]
    lines.append("]")
    for agent_id, line in sorted(roots.agent_keys.items()):
        lines += ["", "[[agents]]", f"id = {quoted(agent_id)}", f"ssh_public_key = {quoted(line)}"]
    return "\n".join(lines) + "\n"
