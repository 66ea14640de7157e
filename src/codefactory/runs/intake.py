"""Intake: a ticket or a webhook delivery becomes a stored trigger and a run, or a refusal
with the reason.

An unreadable CLI ticket still leaves a trace (a trigger row, a `refused` run, audit events);
a webhook delivery is stored before its sender is answered, and every outcome, rejections
included, is an audit event: every trigger is a control point, including the ones that fail.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.exc import IntegrityError

from codefactory.dispatch.queue import (
    IGNORED,
    QUEUED,
    REFUSED,
    DeliveryFacts,
    DeliveryQueue,
)
from codefactory.domain import ChangeKind, Run, RunState, TriggerEvent
from codefactory.runs.loop import RunLoop
from codefactory.store.runs import RunStore
from codefactory.triggers.errors import (
    DeliveryInvalid,
    DeliveryRejected,
    DeliveryStale,
    PayloadTooLarge,
    SignatureInvalid,
    TicketInvalid,
)
from codefactory.triggers.jira import JiraTicketSource
from codefactory.triggers.port import Delivery, ParsedDelivery, WebhookSource
from codefactory.triggers.settings import TriggerSettings

if TYPE_CHECKING:
    from codefactory.factory import Factory


def refuse_delivery(
    store: RunStore, *, source: str, payload: bytes, repository: str, reason: str
) -> Run:
    """Record an unparseable delivery as a trigger and a run refused with `reason`;
    `repository` is the canonical id of the repository it was meant for."""
    event = TriggerEvent(
        source=source,
        kind=ChangeKind.GENERAL_CHANGE,
        external_id="(unparseable)",
        actor="(unknown)",
        repository=repository,
        title="(unparseable delivery)",
        body="",
        received_at=datetime.now(UTC),
        payload_digest="sha256:" + hashlib.sha256(payload).hexdigest(),
    )
    with store.atomic() as tx:
        trigger_id = tx.record_trigger(event)
        run_id = tx.create_run(trigger_id=trigger_id, event=event, sponsor="", agent_id="")
        tx.transition(run_id, RunState.REFUSED, reason=reason, actor=f"intake:{source}")
    return store.require_run(run_id)


def accept_ticket(factory: Factory, *, payload: bytes, repo: Path, engine: str = "") -> Run:
    """Parse a Jira ticket for the checkout `repo`, start its run and drive it as far as it
    goes. The run names the repository by its canonical id (`triggers.repositories`' id for
    that checkout, else `local:<path>`; docs/repositories.md). `engine` asks for an engine
    by registry name; the registry and policy still decide."""
    source = JiraTicketSource()
    repository = factory.settings.triggers.repository_id(repo)
    try:
        event = source.parse(payload, repository=repository)
    except TicketInvalid as err:
        return refuse_delivery(
            factory.store,
            source=source.name,
            payload=payload,
            repository=repository,
            reason=str(err),
        )
    checkout = repo.expanduser().resolve()
    run_id = factory.loop.submit(
        event,
        sponsor=event.actor,
        agent_id=factory.settings.agent_id,
        engine=engine,
        repository_path=str(checkout),
    )
    return factory.loop.execute(run_id, repo=checkout)


@dataclass(frozen=True, kw_only=True)
class Receipt:
    """What intake answers a sender: the delivery, what became of it, and its run."""

    source: str
    delivery_id: str
    status: str
    run_id: str | None = None
    state: str | None = None
    reason: str = ""
    duplicate: bool = False


class WebhookIntake:
    """Verify, read, store and decide deliveries; a stored run is then queued for a worker.

    Order: size → secret → signature → body → replay window → stored (a duplicate answers
    with the first delivery's run) → repository mapping → policy's first check → queued.
    Every outcome, rejections included, is an audit event.
    """

    def __init__(
        self,
        *,
        store: RunStore,
        loop: RunLoop,
        queue: DeliveryQueue,
        settings: TriggerSettings,
        agent_id: str,
        sources: Mapping[str, WebhookSource],
        on_queued: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.loop = loop
        self.queue = queue
        self.settings = settings
        self.agent_id = agent_id
        self.sources = sources
        self.on_queued = on_queued
        # One writer at a time from this process: SQLite serializes writers anyway, and a
        # lock queues them fairly where the driver's busy handler would sleep and retry.
        self._writes = threading.Lock()

    def receive(self, source: str, headers: Mapping[str, str], body: bytes) -> Receipt:
        """Take one HTTP delivery; raises `DeliveryRejected` (401/413) or `DeliveryInvalid`."""
        adapter = self.sources[source]
        delivery = Delivery(
            source=source,
            headers={k.lower(): v for k, v in headers.items()},
            body=body,
            received_at=datetime.now(UTC),
        )
        try:
            parsed = self._verified(adapter, delivery)
        except (DeliveryRejected, DeliveryInvalid) as err:
            self._audit_rejection(delivery, err)
            raise
        return self.accept(
            source,
            parsed,
            digest=delivery.digest,
            received_at=delivery.received_at,
        )

    def refuse_oversized(self, source: str, headers: Mapping[str, str]) -> Receipt:
        """Audit and raise `PayloadTooLarge` for a body not read past the limit."""
        delivery = Delivery(
            source=source,
            headers={k.lower(): v for k, v in headers.items()},
            body=b"",
            received_at=datetime.now(UTC),
        )
        limit = self.settings.max_body_bytes
        declared = delivery.header("content-length")
        err = PayloadTooLarge(source, int(declared) if declared.isdigit() else limit + 1, limit)
        self._audit_rejection(delivery, err)
        raise err

    def _verified(self, adapter: WebhookSource, delivery: Delivery) -> ParsedDelivery:
        limit = self.settings.max_body_bytes
        if len(delivery.body) > limit:
            raise PayloadTooLarge(delivery.source, len(delivery.body), limit)
        secret = self.settings.secret_for(delivery.source)
        if not secret:
            raise SignatureInvalid(delivery.source, "", "no webhook secret is configured")
        adapter.verify(delivery, secret)
        parsed = adapter.read(delivery)
        if parsed.sent_at is not None:
            skew = (delivery.received_at - parsed.sent_at).total_seconds()
            if abs(skew) > self.settings.replay_window_s:
                raise DeliveryStale(
                    delivery.source, parsed.delivery_id, skew, self.settings.replay_window_s
                )
        return parsed

    def _audit_rejection(self, delivery: Delivery, err: DeliveryRejected | DeliveryInvalid) -> None:
        status = err.status if isinstance(err, DeliveryRejected) else 400
        with self._writes, self.store.atomic() as tx:
            tx.audit(
                "webhook-rejected",
                actor=f"intake:{delivery.source}",
                source=delivery.source,
                delivery_id=err.delivery_id,
                status=status,
                reason=err.reason,
                payload_digest=delivery.digest,
            )

    def accept(
        self, source: str, parsed: ParsedDelivery, *, digest: str, received_at: datetime
    ) -> Receipt:
        """Store an authenticated delivery and decide it (webhooks and schedules alike)."""
        with self._writes:
            receipt = self._accept(source, parsed, digest=digest, received_at=received_at)
        if receipt.status == QUEUED and not receipt.duplicate and self.on_queued is not None:
            self.on_queued()
        return receipt

    def _accept(
        self, source: str, parsed: ParsedDelivery, *, digest: str, received_at: datetime
    ) -> Receipt:
        existing = self.queue.get(source, parsed.delivery_id)
        if existing is None:
            try:
                return self._store(source, parsed, digest=digest, received_at=received_at)
            except IntegrityError:  # the same delivery, stored meanwhile by another request
                existing = self.queue.get(source, parsed.delivery_id)
                if existing is None:
                    raise
        with self.store.atomic() as tx:
            tx.audit(
                "webhook-duplicate",
                actor=f"intake:{source}",
                run_id=existing.run_id or "",
                source=source,
                delivery_id=parsed.delivery_id,
                payload_digest=digest,
            )
        run = self.store.get_run(existing.run_id) if existing.run_id else None
        return Receipt(
            source=source,
            delivery_id=parsed.delivery_id,
            status=existing.status,
            run_id=existing.run_id,
            state=run.state.value if run else None,
            reason=run.reason if run else existing.reason,
            duplicate=True,
        )

    def _store(
        self, source: str, parsed: ParsedDelivery, *, digest: str, received_at: datetime
    ) -> Receipt:
        row = DeliveryFacts(
            source=source,
            delivery_id=parsed.delivery_id,
            event=parsed.event,
            digest=digest,
            received_at=received_at,
        )
        event = parsed.trigger
        if event is None:
            with self.store.atomic() as tx:
                self.queue.add(tx.session, row, status=IGNORED, reason=parsed.ignored)
                tx.audit(
                    "webhook-ignored",
                    actor=f"intake:{source}",
                    source=source,
                    delivery_id=parsed.delivery_id,
                    event=parsed.event,
                    reason=parsed.ignored,
                )
            return Receipt(
                source=source,
                delivery_id=parsed.delivery_id,
                status=IGNORED,
                reason=parsed.ignored,
            )
        binding = self.settings.binding_for(source, event.repository)
        if binding is None:
            return self._refuse_unmapped(source, parsed, event, row)
        checkout = binding.path.expanduser().resolve()
        remote = event.attributes.get("remote_repository") or event.repository
        event = replace(
            event,
            repository=self.settings.delivery_repository_id(source, event.repository)
            or self.settings.repository_id(checkout),
            attributes={**event.attributes, "remote_repository": remote},
        )
        sponsor = binding.sponsor if event.autonomous else event.actor
        with self.store.atomic() as tx:
            trigger_id = tx.record_trigger(event)
            run_id = tx.create_run(
                trigger_id=trigger_id,
                event=event,
                sponsor=sponsor,
                agent_id=self.agent_id,
                engine=self.loop.engine_name(event.kind.value),
                repository_path=str(checkout),
            )
            # Queued at once: a worker that claims it before the decision below decides it
            # itself (`RunLoop.execute` authorizes a `received` run), so nothing waits on us.
            row_id = self.queue.add(tx.session, row, status=QUEUED, run_id=run_id)
            tx.audit(
                "webhook-accepted",
                actor=f"intake:{source}",
                run_id=run_id,
                source=source,
                delivery_id=parsed.delivery_id,
                event=parsed.event,
                payload_digest=digest,
            )
        run = self.loop.authorize(run_id)
        refused = run.state in (RunState.REFUSED, RunState.FAILED)
        status = REFUSED if refused else QUEUED
        if refused:
            self.queue.mark(row_id, status, reason=run.reason)
        return Receipt(
            source=source,
            delivery_id=parsed.delivery_id,
            status=status,
            run_id=run_id,
            state=run.state.value,
            reason=run.reason,
        )

    def _refuse_unmapped(
        self, source: str, parsed: ParsedDelivery, event: TriggerEvent, row: DeliveryFacts
    ) -> Receipt:
        reason = (
            f"the repository `{event.repository}` is not mapped to a local repository "
            f"(triggers.repositories)"
        )
        with self.store.atomic() as tx:
            trigger_id = tx.record_trigger(event)
            run_id = tx.create_run(trigger_id=trigger_id, event=event, sponsor="", agent_id="")
            tx.transition(run_id, RunState.REFUSED, reason=reason, actor=f"intake:{source}")
            self.queue.add(tx.session, row, status=REFUSED, run_id=run_id, reason=reason)
        return Receipt(
            source=source,
            delivery_id=parsed.delivery_id,
            status=REFUSED,
            run_id=run_id,
            state=RunState.REFUSED.value,
            reason=reason,
        )
