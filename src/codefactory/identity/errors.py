"""Identity and delegation errors.

IdentityError
 ├── AgentUnavailable     the agent is unknown, suspended or revoked: it never starts a run
 ├── AgentInvalid         an agent cannot be registered or changed as asked (names why)
 ├── KeyUnavailable       a key file is missing or unreadable (names the path)
 │    └── SignerUnavailable  a signing key (HSM token, key file) cannot sign: names the setting
 ├── TrustInvalid         the pinned trust file is missing, unreadable or inside the data folder
 ├── IdentityRefused      identity text with control, format or zero-width characters
 ├── DirectoryInvalid     the directory of people cannot be read (names the file and why)
 ├── UnknownPerson        no person in the directory has this id or sender identity
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


class IdentityRefused(IdentityError):
    """Identity text that could hide a difference: control, format or zero-width characters,
    empty, or too long. The message names the character by code point, never raw."""

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(f"{what} refused: {reason}")
        self.what = what
        self.reason = reason


class DirectoryInvalid(IdentityError):
    """The directory of people cannot be used as written; names the file and what is wrong."""


class UnknownPerson(IdentityError):
    """No person in the directory has this id or sender identity."""

    def __init__(self, kind: str, identity: str) -> None:
        shown = identity.encode("unicode_escape").decode("ascii")[:120]
        super().__init__(f"no person in the directory has the {kind} identity {shown!r}")
        self.kind = kind
        self.identity = identity


class SignerUnavailable(KeyUnavailable):
    """A signing key cannot be used (PKCS#11 library, token, PIN or key missing; a key that is
    not the pinned one): nothing is signed on a guess. Names the setting to fix."""

    def __init__(self, setting: str, message: str) -> None:
        IdentityError.__init__(self, f"{setting}: {message}")
        self.setting = setting


class TrustInvalid(IdentityError):
    """The pinned trust roots (`identity.trust_file`) cannot be used: missing, unreadable,
    malformed, inside the data folder, or required (PKCS#11) and not set."""
