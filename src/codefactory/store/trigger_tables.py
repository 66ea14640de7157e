"""Tables of webhook deliveries and schedules (issue 5)."""

from __future__ import annotations

from codefactory.store.models import Base

__all__ = ["Base"]
