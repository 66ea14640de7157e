"""Policy: Cedar policies decide who may start which change on which repository."""

from __future__ import annotations

from typing import TYPE_CHECKING

from codefactory.lazy import lazy_exports

if TYPE_CHECKING:
    from codefactory.domain import Decision
    from codefactory.policy.errors import PolicyError, PolicyInvalid
    from codefactory.policy.port import PolicyEngine

__all__ = ["Decision", "PolicyEngine", "PolicyError", "PolicyInvalid"]

__getattr__ = lazy_exports(
    __name__,
    globals(),
    {
        "Decision": "codefactory.domain",
        "PolicyError": "codefactory.policy.errors",
        "PolicyInvalid": "codefactory.policy.errors",
        "PolicyEngine": "codefactory.policy.port",
    },
)
