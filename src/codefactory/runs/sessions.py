"""Engine sessions backed by the engine registry and the model gateway.

`RegistryClearance` answers the loop's registry questions from an `EngineRegistry`.
`GatewaySessions` opens each round's `EngineSession`: for a language-model engine, a
credential the gateway grants for this run only (budget and prices from the registry entry),
the gateway's address and CA; for every engine, the policy tool gate and an evidence sink
under the run's evidence folder. At the run's end it revokes the credential and records
what the run spent (`engine-spend`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Protocol

from codefactory.audit.events import EngineSpend, ModelCalled, typed
from codefactory.context.runs import RunContexts
from codefactory.domain import ChangeKind, Run
from codefactory.engines.errors import EngineError
from codefactory.engines.registry import EngineRegistry
from codefactory.engines.session import Budget, EngineSession, ModelAccess, Spend
from codefactory.policy.port import PolicyEngine
from codefactory.runs.tool_gate import PolicyToolGate
from codefactory.store.port import RunRepository


class ModelUnreachable(EngineError):
    """The gateway cannot serve this run's model (no upstream, it failed to start)."""


class GatewayPort(Protocol):
    """What sessions need of the model gateway (`engines.gateway.ModelGateway`)."""

    @property
    def url(self) -> str: ...

    @property
    def egress_host(self) -> str: ...

    @property
    def ca_file(self) -> Path: ...

    @property
    def local_url(self) -> str: ...

    @property
    def resolve_entry(self) -> tuple[str, str]: ...

    def start(self) -> None: ...

    def grant(
        self,
        run_id: str,
        agent_id: str,
        sponsor: str,
        engine: str,
        model: str,
        budget: Budget,
        *,
        spent: Spend | None = None,
    ) -> str: ...

    def revoke(self, credential: str) -> None: ...

    def spend(self, run_id: str) -> Spend: ...


class RegistryClearance:
    """The loop's `EngineClearance` over an engine registry."""

    def __init__(self, registry: EngineRegistry) -> None:
        self.registry = registry

    def refusal(
        self, engine: str, *, kind: ChangeKind, repository: str, data_class: str, now: datetime
    ) -> str | None:
        decision = self.registry.check_use(
            engine, kind=kind, repository=repository, data_class=data_class, now=now
        )
        return None if decision.allowed else decision.reason

    def max_rounds(self, engine: str) -> int | None:
        entry = self.registry.get(engine)
        return entry.max_rounds if entry is not None else None

    def data_classes(self, engine: str) -> tuple[str, ...]:
        entry = self.registry.get(engine)
        return tuple(str(name) for name in entry.data_classes) if entry is not None else ()


class GatewaySessions:
    """The loop's `EngineSessions`: one gateway credential per run, for its whole life."""

    def __init__(
        self,
        *,
        registry: EngineRegistry,
        gateway: Callable[[], GatewayPort],
        policy: PolicyEngine,
        store: RunRepository,
        evidence_dir: Path,
        contexts: RunContexts | None = None,
    ) -> None:
        self.registry = registry
        self.contexts = contexts
        self._gateway_factory = gateway
        self._gateway: GatewayPort | None = None
        self.policy = policy
        self.store = store
        self.evidence_dir = evidence_dir
        self._credentials: dict[str, tuple[str, str]] = {}  # run id → (engine, credential)
        self._lock = threading.Lock()

    def open(self, run: Run, engine: str, *, round_number: int) -> EngineSession:
        entry = self.registry.get(engine)
        model: ModelAccess | None = None
        budget = Budget()
        tools: tuple[str, ...] = ()
        if entry is not None:
            tools = entry.allowed_tools
            if not entry.is_recipe:
                budget = entry.budget()
                model = self._model_access(run, engine, entry.model, entry.protocol.value, budget)
        context = self.contexts.get(run.id) if self.contexts is not None else None
        return EngineSession(
            run_id=run.id,
            round=round_number,
            model=model,
            budget=budget,
            tools=PolicyToolGate(policy=self.policy, store=self.store, run=run, engine=engine),
            evidence=self._evidence_sink(run.id, round_number),
            allowed_tools=tools,
            context_tools=model is not None and context is not None,
            mask=context.mask if context is not None else None,
            unmask=context.unmask if context is not None else None,
        )

    def model_requests(self, run: Run) -> int:
        return self._gateway.spend(run.id).requests if self._gateway is not None else 0

    def close(self, run: Run) -> None:
        with self._lock:
            held = self._credentials.pop(run.id, None)
        if held is None or self._gateway is None:
            return
        engine, credential = held
        self._gateway.revoke(credential)
        spent = self._gateway.spend(run.id)
        with self.store.atomic() as tx:
            tx.append(EngineSpend(actor="gateway", run_id=run.id, engine=engine, **asdict(spent)))

    def _spent_before(self, run_id: str) -> Spend:
        """What the run's audited model calls used (`model-called`), whichever process made
        them: a run resumed by another worker keeps the budget it had spent, not a new one."""
        spent = Spend()
        for record in self.store.audit_events(run_id):
            event = typed(record)
            if isinstance(event, ModelCalled):
                spent = Spend(
                    requests=spent.requests + 1,
                    input_tokens=spent.input_tokens + event.input_tokens,
                    output_tokens=spent.output_tokens + event.output_tokens,
                    cost_usd=spent.cost_usd + event.cost_usd,
                    estimated=spent.estimated or event.usage_estimated,
                )
        return spent

    def _model_access(
        self, run: Run, engine: str, model: str, protocol: str, budget: Budget
    ) -> ModelAccess:
        gateway = self._started_gateway()
        with self._lock:
            held = self._credentials.get(run.id)
            if held is None:  # one credential per run: budgets count across its rounds
                credential = gateway.grant(
                    run.id, run.agent_id, run.sponsor, engine, model, budget,
                    spent=self._spent_before(run.id),
                )  # fmt: skip
                self._credentials[run.id] = (engine, credential)
            else:
                credential = held[1]
        return ModelAccess(
            base_url=gateway.url,
            egress_host=gateway.egress_host,
            credential=credential,
            ca_file=gateway.ca_file,
            model=model,
            protocol=protocol,
            local_base_url=gateway.local_url,
            egress_address=gateway.resolve_entry[1],
        )

    def _started_gateway(self) -> GatewayPort:
        with self._lock:
            if self._gateway is None:
                try:
                    gateway = self._gateway_factory()
                    gateway.start()
                except (OSError, ValueError, RuntimeError) as err:
                    raise ModelUnreachable(f"the model gateway could not start: {err}") from err
                self._gateway = gateway
            return self._gateway

    def _evidence_sink(self, run_id: str, round_number: int) -> Callable[[str, bytes], Path]:
        folder = self.evidence_dir / run_id / f"round-{round_number}" / "engine"

        def store(name: str, content: bytes) -> Path:
            if not name or "/" in name or name.startswith("."):
                raise ValueError(f"an evidence name is a plain file name: {name!r}")
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            folder.chmod(0o700)  # the conversation with the model: the factory's eyes only
            path = folder / name
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(content)
            return path

        return store
