"""The engine registry's schema: one `EngineEntry` per cleared (or once cleared) engine.

The shape follows model-risk inventories (SR 11-7 / SR 26-2, PRA SS1/23): identity and exact
versions, approved and prohibited uses, materiality, owner and independent validator with
evidence, enforced controls, monitoring thresholds and the next review date. Parsing is
strict (`extra="forbid"`, no string-to-number coercion, ISO dates only); the loader in
`registry.py` turns pydantic's errors into messages naming the file, entry and field.
"""

from __future__ import annotations

import enum
import re
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator
from pydantic import model_validator as _model_validator

from codefactory.domain import ChangeKind
from codefactory.engines.session import Budget, Price

AGENT_TOOLS = ("read_file", "list_files", "search", "edit_file", "apply_patch", "run", "finish")
"""The in-harness agent's tools (issue 9): the only names its `tools` allow-list may hold."""

NAME_PATTERN = re.compile(r"^(recipe|agent|cli):[a-z0-9][a-z0-9._-]*$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_HOST = re.compile(r"^[A-Za-z0-9.-]+(:\d{1,5})?$")


class Lifecycle(enum.StrEnum):
    """The status an entry declares; `EngineStatus` is what it amounts to on a given day."""

    ACTIVE = "active"
    SUSPENDED = "suspended"
    RETIRED = "retired"


class EngineStatus(enum.StrEnum):
    """An entry's computed status at a moment: only `cleared` may run."""

    CLEARED = "cleared"
    EXPIRED = "expired"
    """Active and validated, but its next review date has passed."""
    SUSPENDED = "suspended"
    RETIRED = "retired"
    UNVALIDATED = "unvalidated"
    """No independent validator, no validation date (or one still to come), or, for a
    language-model engine, no validation evidence."""
    INVALID = "invalid"
    """Validated, but breaks a registry rule (a price or budget missing, an unknown tool)."""


class Materiality(enum.StrEnum):
    """Model-risk tier (SR 11-7 / PRA SS1/23 tiering): how much harm a wrong change can do."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class DataClass(enum.StrEnum):
    """The bank's data classification of a repository, least to most sensitive."""

    PUBLIC = "public"
    INTERNAL = "internal"
    CONFIDENTIAL = "confidential"
    RESTRICTED = "restricted"


class WireProtocol(enum.StrEnum):
    """How an engine talks to its model through the gateway; `none` for recipes."""

    OPENAI_CHAT = "openai-chat"
    OPENAI_RESPONSES = "openai-responses"
    ANTHROPIC_MESSAGES = "anthropic-messages"
    NONE = "none"


def _iso_date(value: Any) -> date:
    # TOML gives dates natively; a datetime or a number is a mistake, not a date.
    if isinstance(value, datetime):
        raise ValueError("must be a date (YYYY-MM-DD), not a date and time")
    if isinstance(value, date):
        return value
    if isinstance(value, str) and _ISO_DATE.match(value):
        return date.fromisoformat(value)
    raise ValueError("must be an ISO date (YYYY-MM-DD)")


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a number")
    return float(value)


IsoDate = Annotated[date, BeforeValidator(_iso_date)]
Count = Annotated[int, Field(strict=True, ge=0)]
Amount = Annotated[float, BeforeValidator(_number), Field(ge=0)]
Rate = Annotated[float, BeforeValidator(_number), Field(ge=0, le=1)]
Text = Annotated[str, Field(strict=True)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class BudgetLimits(_Strict):
    """The most one run may spend on its model; a measure left out allows nothing."""

    requests: Count | None = None
    input_tokens: Count | None = None
    output_tokens: Count | None = None
    cost_usd: Amount | None = None
    """US dollars, priced with the entry's `prices`."""
    wall_s: Amount | None = None
    """Seconds of wall time from the first model request."""

    def missing(self) -> list[str]:
        """The measures not set, as field names."""
        return [name for name, value in self if value is None]


class ModelPrice(_Strict):
    """US dollars per million tokens."""

    input_per_mtok: Amount
    output_per_mtok: Amount


class AtLeast(_Strict):
    min: Rate


class AtMost(_Strict):
    max: Rate


class CostAtMost(_Strict):
    max: Amount
    """US dollars per run."""


class MonitoringMetrics(_Strict):
    """Thresholds for ongoing monitoring; the results come from the runs, not from here."""

    acceptance_rate: AtLeast | None = None
    """Share of the engine's changes that reviewers accepted."""
    gate_failure_rate: AtMost | None = None
    """Share of its rounds whose change failed the gate."""
    cost_per_run: CostAtMost | None = None


class EngineEntry(_Strict):
    """One engine in the inventory, as written in the registry file."""

    name: Text
    """Registry name: `recipe:<name>`, `agent:<name>` or `cli:<name>`."""
    engine_version: Text = Field(min_length=1)
    """The exact engine release (`@openai/codex 0.169.0`, `codefactory 0.1.0`)."""
    model: Text = ""
    """The model id sent to the provider; empty for recipes."""
    model_version: Text = ""
    """The exact model snapshot; empty for recipes."""
    provider: Text = ""
    endpoint: Text = ""
    """Where the gateway forwards to (`replay`, a provider URL); informational."""
    protocol: WireProtocol
    purpose: Text = ""
    status: Lifecycle
    status_reason: Text = ""
    """Why it is suspended or retired; shown in every refusal."""
    change_kinds: list[ChangeKind] = Field(min_length=1)
    repositories: list[Annotated[str, Field(strict=True, min_length=1)]] = ["*"]
    """Glob patterns (`fnmatch`, case-sensitive) on the repository's canonical id (`acme/*`,
    `local:/srv/*`; docs/repositories.md)."""
    data_classes: list[DataClass] = Field(min_length=1)
    prohibited_change_kinds: list[ChangeKind] = []
    prohibited_repositories: list[Annotated[str, Field(strict=True, min_length=1)]] = []
    materiality: Materiality
    owner: Text = Field(min_length=1)
    validator: Text = ""
    """Who validated it independently; must not be the owner."""
    validated_on: IsoDate | None = None
    validation_evidence: list[Text] = []
    """Run ids whose evidence supports the validation."""
    known_limitations: list[Text] = []
    tools: list[Text] = []
    """Tool allow-list; the in-harness agent's names are `AGENT_TOOLS`."""
    egress_hosts: list[Text] = []
    """Hosts besides the gateway (which is implicit); normally none."""
    limits: BudgetLimits = Field(default=BudgetLimits(), alias="budget")
    """Written `budget` in the file; `budget()` turns it into the session's `Budget`."""
    max_rounds: int = Field(default=2, strict=True, ge=1, le=20)
    prices: dict[str, ModelPrice] = {}
    """Model id → price."""
    metrics: MonitoringMetrics = MonitoringMetrics()
    next_review: IsoDate

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_PATTERN.match(value):
            raise ValueError("must be recipe:NAME, agent:NAME or cli:NAME (lower case)")
        return value

    @field_validator("egress_hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        for host in value:
            if not _HOST.match(host):
                raise ValueError(f"{host!r} is not a host name with an optional :port")
        return value

    @_model_validator(mode="after")
    def _kind_matches_fields(self) -> EngineEntry:
        if self.is_recipe:
            if self.protocol is not WireProtocol.NONE:
                raise ValueError("a recipe reaches no model: protocol must be 'none'")
            if self.model or self.model_version:
                raise ValueError("a recipe reaches no model: model and model_version are empty")
        else:
            if self.protocol is WireProtocol.NONE:
                raise ValueError("a language-model engine needs a protocol other than 'none'")
            if not self.model or not self.model_version:
                raise ValueError("a language-model engine needs model and model_version")
        return self

    @property
    def is_recipe(self) -> bool:
        """A deterministic recipe: reaches no model."""
        return self.name.startswith("recipe:")

    @property
    def allowed_tools(self) -> tuple[str, ...]:
        """For `EngineSession.allowed_tools`."""
        return tuple(self.tools)

    def budget(self) -> Budget:
        """The run budget for `EngineSession.budget`, with this entry's prices; a measure the
        file leaves out allows nothing (0), so a forgotten cap fails closed."""
        limits = self.limits
        return Budget(
            requests=limits.requests or 0,
            input_tokens=limits.input_tokens or 0,
            output_tokens=limits.output_tokens or 0,
            cost_usd=limits.cost_usd or 0.0,
            wall_s=limits.wall_s or 0.0,
            prices={
                model: Price(input_per_mtok=p.input_per_mtok, output_per_mtok=p.output_per_mtok)
                for model, p in self.prices.items()
            },
        )
