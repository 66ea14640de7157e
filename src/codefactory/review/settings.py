"""Settings of the review primitive: notifications (`notify.*`), change requests
(`changes.*`) and the regulated track after approval (`review.*`); off unless configured."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class SlackSettings(BaseModel):
    """The factory's Slack app: its bot token file (`xoxb-…`, scope `chat:write`)."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = "https://slack.com/api"
    token_file: Path | None = None
    """Unset: no Slack messages."""
    timeout_s: float = Field(default=10.0, gt=0)


class EmailSettings(BaseModel):
    """The bank's SMTP relay."""

    model_config = ConfigDict(extra="forbid")

    host: str = ""
    """Empty: no e-mail."""
    port: int = Field(default=25, gt=0, lt=65536)
    sender: str = "codefactory@localhost"
    starttls: bool = False
    user: str = ""
    password_file: Path | None = None
    timeout_s: float = Field(default=10.0, gt=0)


class JiraUpdateSettings(BaseModel):
    """What the Jira ticket that started a run hears (through the `jira.*` instance)."""

    model_config = ConfigDict(extra="forbid")

    milestones: list[str] = Field(default_factory=list)
    """Run states commented on the ticket (`in_review`, `handed_off`, `failed`,
    `rejected`); empty: the ticket is not updated."""
    transitions: dict[str, str] = Field(default_factory=dict)
    """Run state → the workflow transition id to take then (`{"in_review": "31"}`)."""


class NotifySettings(BaseModel):
    """Who is told when a run waits for them, and how (docs/review.md)."""

    model_config = ConfigDict(extra="forbid")

    slack: SlackSettings = Field(default_factory=SlackSettings)
    email: EmailSettings = Field(default_factory=EmailSettings)
    jira: JiraUpdateSettings = Field(default_factory=JiraUpdateSettings)


class ChangeSettings(BaseModel):
    """Filing each packaged run's change request in ServiceNow (`servicenow.*` instance)."""

    model_config = ConfigDict(extra="forbid")

    file_in_servicenow: bool = False
    """Create a `change_request` from the package's `cab.json` on packaging."""
    assignment_group: str = ""
    """The group (name or sys_id) the change is assigned to; empty: the instance's rule."""
    lead_time_h: float = Field(default=24.0, ge=0)
    """Hours from packaging to the planned start."""
    window_h: float = Field(default=2.0, gt=0)
    """Hours from the planned start to the planned end."""
    cab_gate: bool = True
    """With `file_in_servicenow`, an approved change that is not a standard change (its
    `cab.json` `type`, which the package's policy sets: `standard` only for a low-risk
    recipe change) waits for the CAB's `approval` of its change request before the hand-off."""


SignOffStage = Literal["qa", "uat"]
STAGE_ORDER: tuple[SignOffStage, ...] = ("qa", "uat")


class ReviewTrackSettings(BaseModel):
    """The regulated track after approval (`CODEFACTORY_REVIEW__SIGN_OFFS='["qa","uat"]'`)."""

    model_config = ConfigDict(extra="forbid")

    sign_offs: list[SignOffStage] = Field(default_factory=list)
    """The signed sign-offs an approved change needs, in order (`qa`, then `uat`); empty
    (the embedded default): approval hands the change off (`handed_off`); otherwise it goes
    to `in_qa` (or `in_uat`) and ends `accepted` after the last sign-off."""

    @field_validator("sign_offs")
    @classmethod
    def _in_order(cls, stages: list[SignOffStage]) -> list[SignOffStage]:
        if stages != [s for s in STAGE_ORDER if s in stages]:
            raise ValueError("sign_offs lists each of qa and uat at most once, qa first")
        return stages
