"""Sandbox errors.

SandboxError
 ├── SandboxUnavailable   the backend cannot run here (missing bwrap, no namespaces)
 ├── ProvisionFailed      the repository could not be copied into a workspace
 └── SetupFailed          the setup phase (dependency installation) failed
"""

from __future__ import annotations


class SandboxError(Exception):
    """Base class for every sandbox failure."""


class SandboxUnavailable(SandboxError):
    """The sandbox backend cannot start on this machine."""


class ProvisionFailed(SandboxError):
    """The repository could not be turned into a workspace."""


class SetupFailed(SandboxError):
    """Installing the repository's dependencies failed."""
