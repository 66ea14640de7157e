"""Identity and delegation errors.

IdentityError
 ├── AgentUnavailable     the agent is unknown, suspended or revoked: it never starts a run
 ├── AgentInvalid         an agent cannot be registered or changed as asked (names why)
 ├── KeyUnavailable       a key file is missing or unreadable (names the path)
 └── DelegationRefused    a run's delegation token does not allow the act (names run, jti, why)
"""

from __future__ import annotations


class IdentityError(Exception):
    """Base class for identity and delegation failures."""


class AgentUnavailable(IdentityError):
    """The agent is unknown, suspended or revoked: it never starts a run."""

    def __init__(self, agent_id: str, status: str) -> None:
        super().__init__(f"agent {agent_id} is {status} and may not start runs")
        self.agent_id = agent_id
        self.status = status


class AgentInvalid(IdentityError):
    """The registry refuses the request; the message says what to change."""


class KeyUnavailable(IdentityError):
    """A key the factory needs cannot be read."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"key {path}: {message}")
        self.path = path


class DelegationRefused(IdentityError):
    """The run's delegation does not allow the act: forged, expired, revoked, another run's,
    or out of scope."""

    def __init__(self, run_id: str, jti: str, action: str, reason: str) -> None:
        super().__init__(f"delegation refused for {action} in run {run_id}: {reason}")
        self.run_id = run_id
        self.jti = jti
        self.action = action
        self.reason = reason
