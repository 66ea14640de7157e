"""Tables of sandbox images and egress (issue 3)."""

from __future__ import annotations

from codefactory.store.models import Base

__all__ = ["Base"]
