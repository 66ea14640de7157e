"""Execution environment: isolated workspaces for engines and checks."""

from codefactory.sandbox.errors import (
    ProvisionFailed,
    SandboxError,
    SandboxUnavailable,
    SetupFailed,
)
from codefactory.sandbox.port import Phase, Sandbox, Workspace

__all__ = [
    "Phase",
    "ProvisionFailed",
    "Sandbox",
    "SandboxError",
    "SandboxUnavailable",
    "SetupFailed",
    "Workspace",
]
