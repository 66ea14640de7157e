"""Settings of the trigger surface (webhook secrets, schedules)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class TriggerSettings(BaseModel):
    """Settings of the trigger surface (webhook secrets, schedules)."""

    model_config = ConfigDict(extra="forbid")
