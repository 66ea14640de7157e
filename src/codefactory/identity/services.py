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
from codefactory.identity.agent_keys import AgentKeyFiles
from codefactory.identity.agents import AgentIdentity
from codefactory.identity.delegation import DelegationAuthority
from codefactory.identity.directory import FileDirectory
from codefactory.identity.errors import DirectoryInvalid
from codefactory.identity.keyfiles import Ed25519KeyFiles
from codefactory.identity.registry import SqlAgentRegistry
from codefactory.package.provenance import DsseProvenance

if TYPE_CHECKING:
    from codefactory.config import Settings


@dataclass(frozen=True, kw_only=True)
class IdentityServices:
    """What commands and the loop need of identity & delegation."""

    issuer: Ed25519KeyFiles
    agents: SqlAgentRegistry
    agent_keys: AgentKeyFiles
    delegation: DelegationAuthority
    directory: FileDirectory


def directory_for(settings: Settings) -> FileDirectory:
    """The directory of people (`identity.directory_file`); refused (`DirectoryInvalid`) when
    the file lies inside the data folder, whose copy alone must not add a person or a key."""
    path = settings.identity.directory_file
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


def issuer_for(settings: Settings) -> Ed25519KeyFiles:
    """The issuer's key files (made on first use)."""
    return Ed25519KeyFiles(keys_dir(settings) / "issuer", name=settings.identity.issuer)


def build_identity(
    settings: Settings,
    *,
    engine: Engine,
    audit: AuditLog,
    issuer: Ed25519KeyFiles,
    default_agent: AgentIdentity,
) -> IdentityServices:
    """The registry (registering `default_agent` on first use) and the delegation authority."""
    agent_keys = AgentKeyFiles(keys_dir(settings) / "agents")
    agents = SqlAgentRegistry(
        engine, audit=audit, keys=agent_keys, issuer=issuer.name, default=default_agent
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
        directory=directory_for(settings),
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
