"""Settings of the feedback loop (checks, thresholds, caches)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class VerifySettings(BaseModel):
    """Settings of the feedback loop (checks, thresholds, caches)."""

    model_config = ConfigDict(extra="forbid")
