"""Tables of check baselines and test maps (issue 6)."""

from __future__ import annotations

from codefactory.store.models import Base

__all__ = ["Base"]
