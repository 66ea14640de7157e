"""Settings of identity & delegation and the audit log."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class IdentitySettings(BaseModel):
    """Settings of identity & delegation and the audit log."""

    model_config = ConfigDict(extra="forbid")
