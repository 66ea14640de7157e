"""Policy: Cedar policies decide who may start which change on which repository."""

from codefactory.domain import Decision
from codefactory.policy.errors import PolicyError, PolicyInvalid
from codefactory.policy.port import PolicyEngine

__all__ = ["Decision", "PolicyEngine", "PolicyError", "PolicyInvalid"]
