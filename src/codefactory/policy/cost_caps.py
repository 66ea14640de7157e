"""Daily cost caps, decided by Cedar before every engine round.

Before an engine starts a round, policy is asked `Action::"engine-round"` with the run's
engine as principal (`Engine::"agent:pydantic-ai"`), its repository as resource, and what has
been spent on models today (the UTC day) in the context, in integer micro-dollars (Cedar has
no decimals; 1 USD = 1,000,000):

    spend_today_microusd_repository    model calls of runs on this repository today
    spend_today_microusd_organisation  model calls of every run of this factory today

with `round`, `engine`, `sponsor`, `agent`, `kind` and `run` (`policy/schema.cedarschema`).
The caps are `forbid` policies (`policy/examples/daily-cost-caps.cedar`), so they are
governed like every policy (four eyes, `codefactory policy propose/approve`). `engine-round`
is a guard: a round goes ahead unless a policy forbids it or the evaluation fails (a policy
that errors is a failure, never a pass); no `permit` is needed, so a policy written before
caps existed keeps working. A refused round ends the run `failed` with the deciding policy,
its reason and the figures; the decision is recorded (`policy-decided`, stage
`engine-round`) with a `cost-cap-reached` audit event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from codefactory.domain import Decision
from codefactory.policy.paths import repository_entity
from codefactory.policy.port import EntityRef, PolicyEngine

ACTION = "engine-round"
MICRO = 1_000_000
"""Micro-dollars per US dollar."""


@dataclass(frozen=True, kw_only=True)
class DailySpend:
    """Model spend of one UTC day, in micro-dollars (rounded up: a cap is never undercounted)."""

    day: date
    repository_microusd: int
    organisation_microusd: int


@dataclass(frozen=True, kw_only=True)
class RoundFacts:
    """What policy is told about the run whose engine is about to start a round."""

    run_id: str
    repository: str
    engine: str
    sponsor: str
    agent: str
    kind: str
    round: int


@dataclass(frozen=True, kw_only=True)
class CapRefusal:
    """A round policy refused: the decision and the run's reason (`str(refusal)`)."""

    decision: Decision
    spend: DailySpend
    facts: RoundFacts

    def __str__(self) -> str:
        spend, facts = self.spend, self.facts
        why = self.decision.summary
        deciding = ", ".join(self.decision.policy_ids) or "policy evaluation"
        return (
            f"daily cost cap: {deciding} refused engine round {facts.round} of "
            f"{facts.repository}: spent on models on {spend.day.isoformat()} (UTC) "
            f"{dollars(spend.repository_microusd)} for {facts.repository}, "
            f"{dollars(spend.organisation_microusd)} for the organisation: {why}"
        )

    def audit_data(self) -> dict[str, Any]:
        """The `cost-cap-reached` event's fields (`audit.events.CostCapReached`)."""
        return {
            "repository": self.facts.repository,
            "engine": self.facts.engine,
            "round": self.facts.round,
            "day": self.spend.day.isoformat(),
            "spend_today_microusd_repository": self.spend.repository_microusd,
            "spend_today_microusd_organisation": self.spend.organisation_microusd,
            "policy_ids": list(self.decision.policy_ids),
            "reasons": list(self.decision.reasons),
            "errors": list(self.decision.errors),
        }


def dollars(microusd: int) -> str:
    """`$12.345678`, trailing zeros kept to the cent: `$12.50`."""
    whole, fraction = divmod(microusd, MICRO)
    text = f"{fraction:06d}".rstrip("0")
    return f"${whole}.{text.ljust(2, '0')}"


class CostCaps:
    """Asks policy whether an engine round may start, given today's spend."""

    def __init__(
        self,
        policy: PolicyEngine,
        spend_today: Callable[[str], DailySpend],
        record: Callable[[CapRefusal], None],
    ) -> None:
        """`spend_today(repository)` reads the store; `record` audits a refusal."""
        self.policy = policy
        self.spend_today = spend_today
        self.record = record

    def refusal(self, facts: RoundFacts) -> CapRefusal | None:
        """None when the round may start; else the refusal, recorded."""
        spend = self.spend_today(facts.repository)
        decision = self.policy.authorize(
            principal=str(EntityRef(type="Engine", id=facts.engine)),
            action=f'Action::"{ACTION}"',
            resource=str(EntityRef(type="Repository", id=facts.repository)),
            entities=[repository_entity(facts.repository)],
            context={
                "spend_today_microusd_repository": spend.repository_microusd,
                "spend_today_microusd_organisation": spend.organisation_microusd,
                "round": facts.round,
                "engine": facts.engine,
                "sponsor": facts.sponsor,
                "agent": facts.agent,
                "kind": facts.kind,
                "run": facts.run_id,
            },
        )
        if not forbids(decision):
            return None
        refused = CapRefusal(decision=decision, spend=spend, facts=facts)
        self.record(refused)
        return refused


def forbids(decision: Decision) -> bool:
    """A guard's reading of a decision: refused when a policy decided the deny (a `forbid`)
    or the evaluation failed; a deny only for want of a `permit` lets the round go ahead."""
    if decision.errors:
        return True
    return not decision.allowed and bool(decision.policy_ids)
