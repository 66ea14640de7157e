"""The identity side of the composition root: the issuer, the registry, keys and delegation.

`factory.build_factory` calls these; they live here so the root stays one screen long.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from codefactory.audit.port import AuditLog
from codefactory.identity.agent_keys import AgentKeyFiles, AgentKeys
from codefactory.identity.agents import AgentIdentity
from codefactory.identity.delegation import DelegationAuthority
from codefactory.identity.directory import Directory, FileDirectory
from codefactory.identity.directory_scim import ScimDirectory
from codefactory.identity.errors import DirectoryInvalid, SignerUnavailable, TrustInvalid
from codefactory.identity.keyfiles import Ed25519KeyFiles
from codefactory.identity.port import CheckpointIssuer
from codefactory.identity.registry import SqlAgentRegistry
from codefactory.identity.signer import PKCS11_MODE
from codefactory.identity.trust import SETTING as TRUST_SETTING
from codefactory.identity.trust import TrustRoots, load_trust
from codefactory.identity.trust_pinned import PinnedAgentKeys, PinnedIssuer
from codefactory.package.provenance import DsseProvenance

if TYPE_CHECKING:
    from codefactory.config import Settings
    from codefactory.identity.pkcs11 import Pkcs11Keyring
    from codefactory.review.signed_facts import CommitReader, SignedFacts


@dataclass(frozen=True, kw_only=True)
class IdentityServices:
    """What commands and the loop need of identity & delegation."""

    issuer: CheckpointIssuer
    agents: SqlAgentRegistry
    agent_keys: AgentKeys
    delegation: DelegationAuthority
    directory: Directory
    trust: TrustRoots | None = None
    """The pinned trust roots (`identity.trust_file`); None in unpinned development mode."""


def directory_for(settings: Settings) -> Directory:
    """The directory of people: `ScimDirectory` when `identity.directory_scim_url` is set,
    else the file `identity.directory_file`. Refused (`DirectoryInvalid`) when both are set,
    when the SCIM URL has no `identity.directory_scim_token_file`, or when the directory file
    or the token file lies inside the data folder, whose copy alone must not add a person or
    a key."""
    identity = settings.identity
    if identity.directory_scim_url is not None:
        if identity.directory_file is not None:
            raise DirectoryInvalid(
                "both identity.directory_file and identity.directory_scim_url are set: choose "
                "one directory of people"
            )
        if identity.directory_scim_token_file is None:
            raise DirectoryInvalid(
                f"identity.directory_scim_url is {identity.directory_scim_url} but "
                "identity.directory_scim_token_file is unset: name the file holding the token"
            )
        token_file = identity.directory_scim_token_file.expanduser().resolve()
        if token_file.is_relative_to(settings.data_dir):
            raise DirectoryInvalid(
                f"SCIM token file {token_file} is inside the data folder {settings.data_dir}: "
                "keep it where the data folder alone cannot change it "
                "(identity.directory_scim_token_file)"
            )
        return ScimDirectory(
            identity.directory_scim_url, token_file=token_file, ttl_s=identity.directory_ttl_s
        )
    path = identity.directory_file
    if path is None:
        return FileDirectory(None)
    resolved = path.expanduser().resolve()
    if resolved.is_relative_to(settings.data_dir):
        raise DirectoryInvalid(
            f"directory {resolved} is inside the data folder {settings.data_dir}: keep it "
            "where the data folder alone cannot change it (identity.directory_file)"
        )
    return FileDirectory(resolved)


def keys_dir(settings: Settings) -> Path:
    """Where key files live: `identity.keys_dir`, else `<data_dir>/keys`."""
    return settings.identity.keys_dir or settings.data_dir / "keys"


def trust_for(settings: Settings) -> TrustRoots | None:
    """The pinned trust roots, or None when `identity.trust_file` is unset (development mode
    only: with `identity.signer = "pkcs11"` that is refused, `TrustInvalid`)."""
    path = settings.identity.trust_file
    if path is None:
        if settings.identity.signer == PKCS11_MODE:
            raise TrustInvalid(
                f'identity.signer is "pkcs11" but {TRUST_SETTING} is unset: run '
                "`codefactory identity trust-export > /etc/codefactory/trust.toml`, review it, "
                f"and set {TRUST_SETTING} (outside the data folder)"
            )
        return None
    return load_trust(path, data_dir=settings.data_dir)


def keyring_for(settings: Settings) -> Pkcs11Keyring:
    """The PKCS#11 token of `identity.pkcs11`; a PIN file inside the data folder is refused
    (`SignerUnavailable`): whoever reads the folder would hold the token's PIN."""
    from codefactory.identity.pkcs11 import Pkcs11Keyring

    pin_file = settings.identity.pkcs11.pin_file
    if pin_file is not None and pin_file.expanduser().resolve().is_relative_to(settings.data_dir):
        raise SignerUnavailable(
            "identity.pkcs11.pin_file", f"{pin_file} is inside the data folder {settings.data_dir}"
        )
    return Pkcs11Keyring(settings.identity.pkcs11)


def unpinned_issuer(settings: Settings) -> CheckpointIssuer:
    """The issuer's keys where they live: the PKCS#11 token, or key files (made on first
    use) in development mode."""
    if settings.identity.signer == PKCS11_MODE:
        from codefactory.identity.pkcs11_keys import TokenIssuer

        return TokenIssuer(keyring_for(settings), name=settings.identity.issuer)
    return Ed25519KeyFiles(keys_dir(settings) / "issuer", name=settings.identity.issuer)


def unpinned_agent_keys(settings: Settings) -> AgentKeys:
    """The agents' keys where they live: the token, or key files in development mode."""
    if settings.identity.signer == PKCS11_MODE:
        from codefactory.identity.pkcs11_keys import TokenAgentKeys

        return TokenAgentKeys(keyring_for(settings))
    return AgentKeyFiles(keys_dir(settings) / "agents")


def issuer_for(settings: Settings) -> CheckpointIssuer:
    """The issuer: signing where its keys live, trusting only the pinned keys when a trust
    file is set (`TrustInvalid` when it must be and is not)."""
    trust = trust_for(settings)
    issuer = unpinned_issuer(settings)
    return issuer if trust is None else PinnedIssuer(issuer, trust)


def agent_keys_for(settings: Settings) -> AgentKeys:
    """The agents' keys, signing and trusted only as pinned when a trust file is set."""
    trust = trust_for(settings)
    keys = unpinned_agent_keys(settings)
    return keys if trust is None else PinnedAgentKeys(keys, trust)


def build_identity(
    settings: Settings,
    *,
    engine: Engine,
    audit: AuditLog,
    issuer: CheckpointIssuer,
    default_agent: AgentIdentity,
) -> IdentityServices:
    """The registry (registering `default_agent` on first use) and the delegation authority."""
    from codefactory.identity.governance import statement_verifier

    agent_keys = agent_keys_for(settings)
    directory = directory_for(settings)
    agents = SqlAgentRegistry(
        engine,
        audit=audit,
        keys=agent_keys,
        issuer=issuer.name,
        default=default_agent,
        verifier=statement_verifier(settings, directory),  # statuses count only when signed
    )
    delegation = DelegationAuthority(
        engine,
        issuer=issuer,
        audit=audit,
        agents=agents,
        audience=settings.identity.audience,
        ttl_s=settings.identity.token_ttl_s,
        scope_paths=settings.identity.scope_paths,
    )
    return IdentityServices(
        issuer=issuer,
        agents=agents,
        agent_keys=agent_keys,
        delegation=delegation,
        directory=directory,
        trust=trust_for(settings),
    )


def agent_provenance(
    identity: IdentityServices, decisions: Callable[[str], list[dict[str, Any]]]
) -> DsseProvenance:
    """Provenance signed by each run's agent, naming the policy decisions and the token."""

    def sign(agent_id: str, message: bytes) -> tuple[str, bytes]:
        key, signature = identity.agent_keys.sign(agent_id, message)
        return key.kid, signature

    def facts(run_id: str) -> dict[str, Any]:
        token = identity.delegation.token_for(run_id)
        return {
            "policyDecisions": decisions(run_id),
            "delegation": {"jti": token.jti if token else "", "issuer": identity.issuer.name},
        }

    return DsseProvenance(sign=sign, facts=facts, builder_id=identity.issuer.name)


def check_signing(identity: IdentityServices, audit: AuditLog, *, signer_mode: str) -> None:
    """Fail closed at start-up when the HSM cannot sign (library, token, PIN or key missing):
    appends a `signer-unavailable` audit event and re-raises `SignerUnavailable`."""
    if signer_mode != PKCS11_MODE:
        return
    from codefactory.audit.events import SignerUnavailable as SignerUnavailableEvent
    from codefactory.identity.pkcs11_keys import TokenIssuer

    issuer = identity.issuer
    inner = issuer.inner if isinstance(issuer, PinnedIssuer) else issuer
    try:
        if isinstance(inner, TokenIssuer):
            current = inner.current().key_id
            if identity.trust is not None and current != identity.trust.current_issuer_kid:
                raise SignerUnavailable(
                    TRUST_SETTING, f"the token's issuer key {current} is not the pinned current key"
                )
    except SignerUnavailable as error:
        audit.append(
            SignerUnavailableEvent(actor="factory", setting=error.setting, error=str(error))
        )
        raise


def signed_facts(identity: IdentityServices, forge: CommitReader) -> SignedFacts:
    """What a review binds to, checked against the pinned issuer and agent keys."""
    from codefactory.identity.published import allowed_signers, pinned_ssh_key
    from codefactory.review.signed_facts import SignedFacts

    def agent_key(agent_id: str) -> str:
        return pinned_ssh_key(identity.agents.get(agent_id), identity.trust)

    return SignedFacts(
        forge=forge,
        tokens=identity.delegation,
        issuer_keys=identity.issuer.public_keys,
        agent_key=agent_key,
        allowed_signers=lambda: allowed_signers(identity.agents.search(), trust=identity.trust),
    )
