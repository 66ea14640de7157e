"""Deciding a stored delivery: which repository, who sponsors it, whether policy lets its run
start.

Intake stores every authenticated delivery first (`store.delivery_writer`); a delivery that
asks for work is then decided, either by intake before its sender is answered
(`triggers.decide_at_intake`, the default) or by the worker that claims it. Deciding creates
the trigger and its run and attaches the run to the delivery in one transaction (a second
decider of the same delivery finds it attached and drives nothing), then asks policy
(`RunLoop.authorize`). The outcomes: an unmapped repository or a sender nobody may sponsor
(a `refused` run, the delivery `refused`), policy's refusal (likewise), or an authorized run
(`queued`), each with its audit events.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from codefactory.audit.events import SponsorRefused, WebhookAccepted
from codefactory.domain import Run, RunState, TriggerEvent
from codefactory.identity.directory import Directory
from codefactory.policy.port import PolicyEngine
from codefactory.runs.loop import RunLoop
from codefactory.store.deliveries import (
    QUEUED,
    REFUSED,
    AlreadyDecided,
    DeliveryQueue,
    QueuedDelivery,
)
from codefactory.store.port import RunRepository
from codefactory.triggers.settings import TriggerSettings
from codefactory.triggers.sponsors import Sponsorship, sponsorship


@dataclass(frozen=True, kw_only=True)
class Decided:
    """A decided delivery: `queued` (its run authorized) or `refused` (with the reason), and
    its run; `decided_here` is False when another process decided it first."""

    status: str
    run: Run | None
    reason: str = ""
    decided_here: bool = True


class DeliveryDecider:
    """Decides stored deliveries (module docstring)."""

    def __init__(
        self,
        *,
        store: RunRepository,
        loop: RunLoop,
        queue: DeliveryQueue,
        settings: TriggerSettings,
        agent_id: str,
        directory: Directory,
        policy: PolicyEngine,
    ) -> None:
        self.store = store
        self.loop = loop
        self.queue = queue
        self.settings = settings
        self.agent_id = agent_id
        self.directory = directory
        self.policy = policy

    def decide(self, delivery: QueuedDelivery, event: TriggerEvent) -> Decided:
        """Decide the stored, undecided `delivery` whose parsed trigger is `event` (the
        sender's repository name in `event.repository`). A refused delivery is marked
        `refused` here; an authorized one keeps its status for the caller to move (intake
        queues it, a worker drives it)."""
        source = delivery.source
        binding = self.settings.binding_for(source, event.repository)
        if binding is None:
            reason = (
                f"the repository `{event.repository}` is not mapped to a local repository "
                f"(triggers.repositories)"
            )
            return self._refuse(delivery, event, reason=reason, actor=f"intake:{source}")
        checkout = binding.path.expanduser().resolve()
        remote = event.attributes.get("remote_repository") or event.repository
        event = replace(
            event,
            repository=self.settings.delivery_repository_id(source, event.repository)
            or self.settings.repository_id(checkout),
            attributes={**event.attributes, "remote_repository": remote},
        )
        found = sponsorship(
            event, directory=self.directory, policy=self.policy, configured_sponsor=binding.sponsor
        )
        event = replace(event, caused_by=found.caused_by)
        if found.refusal:
            return self._refuse(delivery, event, reason=found.refusal, actor="identity",
                                sponsor=found, checkout=checkout)  # fmt: skip
        try:
            with self.store.atomic() as tx:
                trigger_id = tx.record_trigger(event)
                run_id = tx.create_run(
                    trigger_id=trigger_id,
                    event=event,
                    sponsor=found.sponsor,
                    agent_id=self.agent_id,
                    engine=self.loop.engine_name(event.kind.value),
                    repository_path=str(checkout),
                )
                self.queue.attach(tx.session, delivery.id, run_id, status=delivery.status)
                tx.append(
                    WebhookAccepted(
                        actor=f"intake:{source}",
                        run_id=run_id,
                        source=source,
                        delivery_id=delivery.delivery_id,
                        event=delivery.event,
                        payload_digest=event.payload_digest,
                    )
                )
        except AlreadyDecided:
            return self._decided_elsewhere(delivery.id)
        run = self.loop.authorize(run_id)
        if run.state in (RunState.REFUSED, RunState.FAILED):
            self.queue.mark(delivery.id, REFUSED, reason=run.reason)
            return Decided(status=REFUSED, run=run, reason=run.reason)
        return Decided(status=QUEUED, run=run, reason=run.reason)

    def _refuse(
        self,
        delivery: QueuedDelivery,
        event: TriggerEvent,
        *,
        reason: str,
        actor: str,
        sponsor: Sponsorship | None = None,
        checkout: Path | None = None,
    ) -> Decided:
        """A run refused at once for `reason` (an unmapped repository; with `sponsor`, a
        sender nobody may sponsor, recorded as `sponsor-refused`)."""
        try:
            with self.store.atomic() as tx:
                trigger_id = tx.record_trigger(event)
                run_id = tx.create_run(
                    trigger_id=trigger_id,
                    event=event,
                    sponsor="",
                    agent_id=self.agent_id if sponsor is not None else "",
                    repository_path=str(checkout) if checkout is not None else "",
                )
                if sponsor is not None:
                    tx.append(
                        SponsorRefused(actor=actor, run_id=run_id, trigger_id=trigger_id,
                                       source=delivery.source, delivery_id=delivery.delivery_id,
                                       sender_kind=event.sender_kind, sender=event.sender,
                                       policy_ids=list(sponsor.policy_ids), reason=reason)
                    )  # fmt: skip
                tx.transition(run_id, RunState.REFUSED, reason=reason, actor=actor)
                self.queue.attach(tx.session, delivery.id, run_id, status=REFUSED, reason=reason)
        except AlreadyDecided:
            return self._decided_elsewhere(delivery.id)
        return Decided(status=REFUSED, run=self.store.require_run(run_id), reason=reason)

    def _decided_elsewhere(self, row_id: int) -> Decided:
        stored = self.queue.get_by_id(row_id)
        run = self.store.get_run(stored.run_id) if stored and stored.run_id else None
        status = stored.status if stored else REFUSED
        reason = run.reason if run else (stored.reason if stored else "")
        return Decided(status=status, run=run, reason=reason, decided_here=False)
