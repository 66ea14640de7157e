"""What the factory says about where its keys are and whether they are pinned.

`serve` and `audit verify` print `banner()` on stderr and put `key_custody()` in `--json`:
in development mode without a trust file, the keys are files in the data folder and nothing
is pinned, so whoever can write the data folder can forge every signature the factory makes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from codefactory.identity.signer import DEVELOPMENT_MODE

if TYPE_CHECKING:
    from codefactory.config import Settings


@dataclass(frozen=True, kw_only=True)
class KeyCustody:
    """Where private keys live and what is trusted: `signer` is the `identity.signer` mode,
    `pinned` whether `identity.trust_file` is set, `warning` a sentence when unprotected."""

    signer: str
    pinned: bool
    trust_file: str | None
    warning: str | None

    def as_dict(self) -> dict[str, Any]:
        """The `key_custody` field of `--json` outputs."""
        return asdict(self)


def key_custody(settings: Settings) -> KeyCustody:
    """The custody of this factory's keys, from its settings."""
    identity = settings.identity
    trust_file = str(identity.trust_file) if identity.trust_file else None
    warning = None
    if identity.signer == DEVELOPMENT_MODE:
        keys = identity.keys_dir or settings.data_dir / "keys"
        warning = f"development mode: private keys are files in {keys}" + (
            "; the trust file pins the public keys, but whoever reads those files can sign"
            if trust_file
            else " and no trust file pins the public keys (identity.trust_file): anyone "
            "who can write the data folder can rewrite and re-sign the audit log, mint "
            "delegation tokens and sign commits as an agent"
        )
    return KeyCustody(
        signer=identity.signer,
        pinned=trust_file is not None,
        trust_file=trust_file,
        warning=warning,
    )


def banner(settings: Settings) -> str | None:
    """The loud stderr banner for `serve` and `audit verify`, or None when keys are in an
    HSM and pinned."""
    custody = key_custody(settings)
    if custody.warning is None:
        return None
    return f"WARNING: keys not protected: {custody.warning}."


def warn_unprotected_keys(settings: Settings, *, as_json: bool = False) -> dict[str, Any]:
    """Write `banner()` to stderr (if any; with `as_json` the `key_custody` field says it
    instead, so a combined output stays one JSON document) and return `key_custody()`."""
    import sys

    message = banner(settings)
    if message is not None and not as_json:
        sys.stderr.write(f"{message}\n")
    return key_custody(settings).as_dict()
