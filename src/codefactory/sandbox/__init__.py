"""Execution environment: isolated workspaces for engines and checks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from codefactory.lazy import lazy_exports

if TYPE_CHECKING:
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

__getattr__ = lazy_exports(
    __name__,
    globals(),
    {
        "EgressAttempt": "codefactory.sandbox.egress",
        "EgressListener": "codefactory.sandbox.egress",
        "EgressPolicy": "codefactory.sandbox.egress",
        "ProvisionFailed": "codefactory.sandbox.errors",
        "SandboxError": "codefactory.sandbox.errors",
        "SandboxUnavailable": "codefactory.sandbox.errors",
        "SetupFailed": "codefactory.sandbox.errors",
        "StartFailed": "codefactory.sandbox.errors",
        "LimitHit": "codefactory.sandbox.limits",
        "Limits": "codefactory.sandbox.limits",
        "Phase": "codefactory.sandbox.port",
        "Sandbox": "codefactory.sandbox.port",
        "Workspace": "codefactory.sandbox.port",
    },
)
