"""Execution environment: isolated workspaces for engines and checks."""

from codefactory.sandbox.egress import EgressAttempt, EgressListener, EgressPolicy
from codefactory.sandbox.errors import (
    ProvisionFailed,
    SandboxError,
    SandboxUnavailable,
    SetupFailed,
    StartFailed,
)
from codefactory.sandbox.limits import LimitHit, Limits
from codefactory.sandbox.port import Phase, Sandbox, Workspace

__all__ = [
    "EgressAttempt",
    "EgressListener",
    "EgressPolicy",
    "LimitHit",
    "Limits",
    "Phase",
    "ProvisionFailed",
    "Sandbox",
    "SandboxError",
    "SandboxUnavailable",
    "SetupFailed",
    "StartFailed",
    "Workspace",
]
