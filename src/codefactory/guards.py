"""Wiring of the organisation-wide halt and the daily cost caps, for the composition root.

`factory.build_factory` calls `operating_guards(store, policy)` and wraps its ports with what
it returns: the policy (`HaltingPolicy`: every authorization denied during a halt), the
sandbox (`HaltingSandbox`: engine commands killed within seconds of a halt), the engines
(`GuardedEngine`: each round first cleared by the halt and the cost caps) and the model
gateway (`halted`: every model call refused during a halt). docs/halt-and-cost-caps.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from codefactory.audit.events import CostCapReached
from codefactory.engines.guarded import RoundGuard, guarded
from codefactory.engines.port import Engine
from codefactory.policy.cost_caps import CapRefusal, CostCaps, DailySpend, RoundFacts
from codefactory.policy.halt import HaltingPolicy, HaltWatch
from codefactory.policy.port import PolicyEngine
from codefactory.store.halts import HaltStore
from codefactory.store.spend import DailySpendReader

if TYPE_CHECKING:
    from codefactory.store.runs import RunStore

COST_CAP_REACHED = CostCapReached.NAME


@dataclass(frozen=True, kw_only=True)
class OperatingGuards:
    """The halt watch of this process and the guards every engine round passes."""

    watch: HaltWatch
    policy: HaltingPolicy
    round_guards: tuple[RoundGuard, ...]

    def engines(self, engines: Mapping[str, Engine]) -> dict[str, Engine]:
        """Every engine wrapped so that each round passes the guards first."""
        return guarded(engines, self.round_guards)


def halt_watch(store: RunStore) -> HaltWatch:
    """A watch over the store's `halts` table (read at most once a second)."""
    halts = HaltStore(store.engine)

    def read() -> str | None:
        current = halts.active()
        return current.describe if current is not None else None

    return HaltWatch(read)


def operating_guards(store: RunStore, policy: PolicyEngine, watch: HaltWatch) -> OperatingGuards:
    """The halt and cost-cap wrappers over `store`, the policy in force and the halt watch."""
    caps = CostCaps(policy, _Today(DailySpendReader(store.engine)), _CapRecorder(store))

    def halt_guard(run_id: str, engine: str, round_number: int) -> str | None:
        return watch.current()

    def cap_guard(run_id: str, engine: str, round_number: int) -> str | None:
        run = store.get_run(run_id)
        if run is None:  # a rehearsal (`runs replay`, `<run>-replay-<n>`): recorded traffic
            return None  # replayed, no model is paid for and no run of the factory is charged
        facts = RoundFacts(
            run_id=run.id,
            repository=run.repository,
            engine=engine,
            sponsor=run.sponsor,
            agent=run.agent_id,
            kind=run.kind.value,
            round=round_number,
        )
        refusal = caps.refusal(facts)
        return str(refusal) if refusal is not None else None

    return OperatingGuards(
        watch=watch,
        policy=HaltingPolicy(policy, watch),
        round_guards=(halt_guard, cap_guard),
    )


class _Today:
    """`DailySpendReader` for the current UTC day, as `CostCaps` asks it."""

    def __init__(self, reader: DailySpendReader) -> None:
        self.reader = reader

    def __call__(self, repository: str) -> DailySpend:
        day = datetime.now(UTC).date()
        on_repository, in_organisation = self.reader.spend(repository, day)
        return DailySpend(
            day=day, repository_microusd=on_repository, organisation_microusd=in_organisation
        )


class _CapRecorder:
    """Records a refused round: the policy decision (stage `engine-round`) and the figures."""

    def __init__(self, store: RunStore) -> None:
        self.store = store

    def __call__(self, refusal: CapRefusal) -> None:
        run_id = refusal.facts.run_id
        with self.store.atomic() as tx:
            tx.record_decision(
                run_id, stage="engine-round", action="engine-round", decision=refusal.decision
            )
            tx.append(CostCapReached(actor="policy", run_id=run_id, **refusal.audit_data()))
