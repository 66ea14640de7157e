"""Tables of agents, keys, tokens, audit checkpoints (issue 4)."""

from __future__ import annotations

from codefactory.store.models import Base

__all__ = ["Base"]
