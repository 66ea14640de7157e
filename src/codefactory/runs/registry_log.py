"""The engine registry a factory uses is the approved one (four eyes), and every change of
it is an audit event.

`active_registry` reads the configured registry file and asks the governance ledger
(`identity.four_eyes`) which content is active: the file's when it is the approved content or
the first ever seen (adopted), else the last approved content, with a notice saying the file
waits for `codefactory engines propose` and a second approver. Approvals count only when
their signed statements verify again against the directory (`identity.four_eyes`).

At start the factory compares the registry in use with the snapshot the audit log last
recorded (`engine-registry-loaded`); when they differ it appends `engine-registry-changed`
(which entries were added, removed or changed, and which fields) and the new snapshot, in one
transaction. The log alone then shows which engines were cleared, and on what terms, when.
"""

from __future__ import annotations

from pathlib import Path

from codefactory.audit.events import EngineRegistryChanged, EngineRegistryLoaded
from codefactory.audit.port import AuditLog
from codefactory.engines.registry import (
    EngineRegistry,
    RegistryInvalid,
    default_registry_path,
    parse_registry,
)
from codefactory.engines.registry_audit import REGISTRY_LOADED, registry_update
from codefactory.identity.four_eyes import GovernedFile, GovernedState
from codefactory.identity.statements import StatementVerifier
from codefactory.store.port import RunRepository

KIND = "registry"


def configured_registry_path(registry_file: Path | None) -> Path:
    """The configured registry file, else the shipped one."""
    return registry_file or default_registry_path()


def read_registry_text(registry_file: Path | None) -> tuple[Path, str]:
    """The configured registry's path and text; `RegistryInvalid` when unreadable."""
    path = configured_registry_path(registry_file)
    try:
        return path, path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise RegistryInvalid(path, [f"{path}: cannot be read: {err}"]) from err


def active_registry(
    registry_file: Path | None, audit: AuditLog, verifier: StatementVerifier
) -> tuple[EngineRegistry, GovernedState]:
    """The registry to use and how the configured file stands; `RegistryInvalid` when the
    configured file does not parse, `FourEyesRefused` when no approved registry counts (fail
    closed)."""
    path, text = read_registry_text(registry_file)
    configured = parse_registry(text, source=str(path))
    state = GovernedFile(KIND, audit, verifier).state(text, source=str(path))
    if not state.pending:
        return configured, state
    return parse_registry(
        state.active_text, source=f"approved registry {state.active_digest}"
    ), state


def record_registry(store: RunRepository, audit: AuditLog, registry: EngineRegistry) -> bool:
    """Record the registry if it changed since the last snapshot; True when it did.
    A last snapshot this code cannot read counts as none (every entry recorded as added)."""
    last = audit.latest(REGISTRY_LOADED)
    try:
        update = registry_update(last.data if last is not None else None, registry)
    except ValueError:
        update = registry_update(None, registry)
    if update is None:
        return False
    with store.atomic() as tx:
        tx.append(EngineRegistryChanged(actor="registry", **update.changed_data()))
        tx.append(EngineRegistryLoaded(actor="registry", **update.loaded))
    return True
