"""The policy a factory enforces is the approved one (four eyes), not whatever the file says.

`active_policy` reads the configured policy file (or folder, or the shipped default) and
asks the governance ledger (`identity.four_eyes`) which content is active: the file's when it
is the approved content or the first ever seen (adopted), else the last approved content,
with a notice saying the file waits for `codefactory policy propose` and a second approver.
Approvals count only when their signed statements verify again against the directory
(`verifier`); the others are ignored and named in the notices.
"""

from __future__ import annotations

from pathlib import Path

from codefactory.audit.port import AuditLog
from codefactory.identity.four_eyes import GovernedFile, GovernedState
from codefactory.identity.statements import StatementVerifier
from codefactory.policy.cedar import CedarPolicy, default_policy_path

KIND = "policy"


def configured_policy_path(policy_file: Path | None) -> Path:
    """The configured policy file or folder, else the shipped default."""
    return policy_file or default_policy_path()


def active_policy(
    policy_file: Path | None, audit: AuditLog, verifier: StatementVerifier
) -> tuple[CedarPolicy, GovernedState]:
    """The policy to enforce and how the configured file stands; `PolicyInvalid` when the
    configured file does not parse, `FourEyesRefused` when no approved policy counts (fail
    closed)."""
    path = configured_policy_path(policy_file)
    configured = CedarPolicy.from_file(path)
    state = GovernedFile(KIND, audit, verifier).state(configured.text, source=str(path))
    if not state.pending:
        return configured, state
    return CedarPolicy(state.active_text, source=f"approved policy {state.active_digest}"), state


def governance_notices(
    policy_file: Path | None,
    registry_file: Path | None,
    audit: AuditLog,
    verifier: StatementVerifier,
) -> list[str]:
    """One line per governed file (policy, engine registry) whose configured content is not
    the approved content in force, and per ledger event that did not verify and was
    ignored: what `serve` says."""
    from codefactory.runs.registry_log import active_registry

    return [
        *active_policy(policy_file, audit, verifier)[1].notices(),
        *active_registry(registry_file, audit, verifier)[1].notices(),
    ]
