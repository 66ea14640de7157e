"""Intake of webhook deliveries: each becomes a stored delivery, then a trigger and a run, or
a refusal with the reason (a CLI ticket's intake is `runs/tickets.py`).

A webhook delivery is stored before its sender is answered, and every outcome is an audit
event: every trigger is a control point, including the ones that fail. What an
unauthenticated caller can send at will is counted, not logged one by one: rejections per
source, reason and minute (`triggers.rejections`), repeats of a signed body per source,
payload digest and minute (`triggers.duplicates`). A client past its budget of failed
deliveries is answered 429 instead of its error; a delivery whose signature verifies is
never refused by the budget.

The run's sponsor is the directory person of the authenticated sender (the signed
delivery's sender, the logged-in CLI caller), or for an autonomous trigger the repository's
configured sponsor (`triggers.sponsors`); the person who caused the trigger is stored with
it (`TriggerEvent.caused_by`). A body repeated by one source is one run whatever its
delivery id.

A forge's review and merge events about the factory's own `factory/<run-id>` branches
(`review/forge_events.py`) start no run: with a reconciler they are matched to their run
(`review/reconcile.py`), the outcome stored with the delivery in one transaction
(`webhook-reconciled` beside the reconciliation's own event), then any alert is sent.

A ServiceNow business rule's notice that a change's `approval` changed
(`receive_change_notice`, `runs/change_notices.py`) goes through the same size cap, secret
(the ServiceNow source's), rejection budget and duplicate check, then to the review desk; a
repeat is read again while the change's run still waits for the CAB, and authenticated
refusals have a budget per client and minute of their own (`change_notices.NoticeRefusals`).

The forge (reconciliation confirms each approval over its REST API) and ServiceNow's Table
API are asked outside the write lock: a repeat is looked for under it, the vendor asked
without it (one delivery per subject at a time: `SubjectLocks`, a run's branch or a change),
then the outcome stored under it after a second look (a copy stored meanwhile wins).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import NoReturn

from codefactory.audit.events import (
    CabApprovalDeliveryRefusals,
    WebhookDuplicate,
    WebhookIgnored,
    WebhookReconciled,
    WebhookRejections,
)
from codefactory.domain import AuditEvent, TriggerEvent
from codefactory.identity.directory import Directory, FileDirectory
from codefactory.policy.port import PolicyEngine
from codefactory.review.forge_events import ForgeEvent, read_forge_event
from codefactory.review.reconcile import Reconciler, Reconciliation
from codefactory.runs import change_notices as notices
from codefactory.runs.decisions import DeliveryDecider
from codefactory.runs.loop import RunLoop
from codefactory.store.deliveries import (
    DONE,
    IGNORED,
    QUEUED,
    RECEIVED,
    REFUSED,
    DeliveryFacts,
    DeliveryQueue,
    DeliveryStored,
    QueuedDelivery,
)
from codefactory.store.delivery_writer import DeliveryWriter, NewDelivery, Written
from codefactory.store.port import RunRepository
from codefactory.triggers.duplicates import DuplicateTally
from codefactory.triggers.errors import (
    DeliveryInvalid,
    DeliveryRejected,
    DeliveryStale,
    PayloadTooLarge,
    RateLimited,
    SignatureInvalid,
)
from codefactory.triggers.payload import MAX_ID
from codefactory.triggers.port import Delivery, ParsedDelivery, WebhookSource
from codefactory.triggers.rejections import RejectionBudget, RejectionTally
from codefactory.triggers.settings import TriggerSettings
from codefactory.triggers.tally import SourceCount
from codefactory.triggers.text import TextRefused, check_line

MAX_EVENT = 128
"""Longest event name (`X-GitHub-Event` and its action, …) a delivery may carry."""


class SubjectLocks:
    """One lock per subject (a run's branch, a change's sys_id), held while a delivery about
    it asks the forge or ServiceNow and acts on the answer: deliveries about one subject take
    turns (two notices of one change must not both hand its run off), deliveries about others
    do not wait. A subject's lock lives only while someone holds or waits for it."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}

    @contextmanager
    def hold(self, subject: str) -> Iterator[None]:
        """Hold `subject`'s lock for the `with` block."""
        with self._guard:
            lock, users = self._locks.get(subject, (threading.Lock(), 0))
            self._locks[subject] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._locks[subject]
                if users == 1:
                    del self._locks[subject]
                else:
                    self._locks[subject] = (lock, users - 1)


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

    Order: size → secret → signature → body (JSON depth, control characters, id and
    event lengths) → replay window → stored (a repeated delivery id or body answers with
    the first delivery's run) → repository mapping → sponsor (the directory person of the
    sender) → policy's first check → queued. A failure before the signature verified is
    answered 429 instead of its own error once its client (the connection's peer address,
    as the server gives it) is past `rejections_per_minute`; after it, never. Rejections
    are counted into one audit event per source, reason and minute, repeats into one per
    source, payload digest and minute; every other outcome (one per distinct signed body)
    is an audit event of its own. `flush_ended()` (once a minute) and `close()` (at
    shutdown) publish the counts.
    """

    def __init__(
        self,
        *,
        store: RunRepository,
        loop: RunLoop,
        queue: DeliveryQueue,
        settings: TriggerSettings,
        agent_id: str,
        sources: Mapping[str, WebhookSource],
        on_queued: Callable[[], None] | None = None,
        directory: Directory | None = None,
        policy: PolicyEngine | None = None,
        reconciler: Reconciler | None = None,
        cab_approvals: notices.CabApprovals | None = None,
    ) -> None:
        self.store = store
        self.loop = loop
        self.queue = queue
        self.settings = settings
        self.agent_id = agent_id
        self.sources = sources
        self.on_queued = on_queued
        self.directory: Directory = directory if directory is not None else FileDirectory(None)
        self.policy: PolicyEngine = policy if policy is not None else loop.policy
        self.reconciler = reconciler
        """Matches forge review and merge events to runs; None: they are ignored."""
        self.cab_approvals = cab_approvals
        """Takes ServiceNow's change approval notices (the review desk); None: no route."""
        self.writer = DeliveryWriter(store)
        """Stores deliveries, many per commit (group commit), before their senders hear."""
        self.decider = DeliveryDecider(store=store, loop=loop, queue=queue, settings=settings,
                                       agent_id=agent_id, directory=self.directory,
                                       policy=self.policy)  # fmt: skip
        # One writer at a time from this process: SQLite serializes writers anyway, and a
        # lock queues them fairly where the driver's busy handler would sleep and retry.
        self._writes = threading.Lock()
        # Asking the forge or ServiceNow happens outside it, one delivery per subject at a time.
        self._subjects = SubjectLocks()
        self.rejections = RejectionTally(self._publisher(WebhookRejections))
        self.duplicates = DuplicateTally(self._publisher(WebhookDuplicate))
        self.budget = RejectionBudget(settings.rejections_per_minute)
        self.notice_refusals = notices.NoticeRefusals(
            per_minute=settings.rejections_per_minute,
            publish=self._publisher(CabApprovalDeliveryRefusals),
        )
        """Authenticated change notices refused per client and minute (429 past them)."""

    def receive(
        self, source: str, headers: Mapping[str, str], body: bytes, *, client: str = ""
    ) -> Receipt:
        """Take one HTTP delivery from the peer address `client`; raises `DeliveryRejected`
        (401, 413, 429: only for a delivery not authenticated) or `DeliveryInvalid` (400)."""
        adapter = self.sources[source]
        delivery = Delivery(
            source=source,
            headers={k.lower(): v for k, v in headers.items()},
            body=body,
            received_at=datetime.now(UTC),
        )
        self.flush_ended()
        try:
            self._authenticate(adapter, delivery)
        except (DeliveryRejected, DeliveryInvalid) as err:
            self._refuse_unauthenticated(delivery, err, client)
        try:
            parsed = self._read(adapter, delivery)
            forge_event = self._forge_event(delivery, parsed)
        except (DeliveryRejected, DeliveryInvalid) as err:
            self._count_rejection(delivery, err, client)  # signed: never a 429
            raise
        if isinstance(forge_event, ForgeEvent):
            return self.reconcile(
                source, parsed, forge_event, digest=delivery.digest,
                received_at=delivery.received_at,
            )  # fmt: skip
        if forge_event is not None:  # a review or merge that is not the factory's
            parsed = replace(parsed, trigger=None, ignored=forge_event)
        return self.accept(
            source,
            parsed,
            digest=delivery.digest,
            received_at=delivery.received_at,
        )

    def admit(self, source: str, headers: Mapping[str, str], body: bytes) -> NewDelivery | None:
        """The store-only fast path's checks, with no side effect and nothing that blocks,
        for an event loop (`web/webhooks.py`): with `decide_at_intake` off, the delivery to
        store (`writer.submit`, then `answer`) when it authenticates, reads, is fresh and is
        no review or merge of the factory's own branches. None when `receive` must take it
        in a worker thread: a refusal (counted there), a reconciliation, a decision."""
        adapter = self.sources.get(source)
        if self.settings.decide_at_intake or adapter is None:
            return None
        delivery = Delivery(
            source=source,
            headers={k.lower(): v for k, v in headers.items()},
            body=body,
            received_at=datetime.now(UTC),
        )
        try:
            self._authenticate(adapter, delivery)
            parsed = self._read(adapter, delivery)
            forge_event = self._forge_event(delivery, parsed)
        except (DeliveryRejected, DeliveryInvalid):
            return None
        if isinstance(forge_event, ForgeEvent):
            return None
        if forge_event is not None:  # a review or merge that is not the factory's
            parsed = replace(parsed, trigger=None, ignored=forge_event)
        return self._new_delivery(source, parsed, delivery.digest, delivery.received_at)

    def receive_change_notice(
        self, headers: Mapping[str, str], body: bytes, *, client: str = ""
    ) -> Receipt:
        """Take a business rule's change approval notice (`runs/change_notices.py`): size,
        the ServiceNow source's secret (a failure counted, 429 past the budget), replay
        window, then stored with what the review desk made of it; a repeat answers as the
        first. Raises `DeliveryRejected` (401, 413, 429) or `NoticeRefused` (404, 422)."""
        assert self.cab_approvals is not None
        source = notices.NOTICE_SOURCE
        delivery = Delivery(source=source, headers={k.lower(): v for k, v in headers.items()},
                            body=body, received_at=datetime.now(UTC))  # fmt: skip
        secret = self.settings.secret_for(notices.SECRET_SOURCE)
        self.flush_ended()
        try:
            if len(body) > self.settings.max_body_bytes:
                raise PayloadTooLarge(source, len(body), self.settings.max_body_bytes)
            notices.authenticate(delivery, secret)
        except DeliveryRejected as err:
            self._refuse_unauthenticated(delivery, err, client)
        delivery_id = notices.notice_id(delivery)
        try:
            notices.check_fresh(delivery, delivery_id, self.settings.replay_window_s)
        except DeliveryRejected as err:
            self._count_rejection(delivery, err, client)  # signed: never a 429
            raise
        with self._subjects.hold("servicenow-change:" + notices.change_of(delivery_id)):
            return self._take_notice(delivery, delivery_id, secret, client)

    def _take_notice(
        self, delivery: Delivery, delivery_id: str, secret: str, client: str
    ) -> Receipt:
        """The authenticated, fresh notice handed to the desk and stored (the caller holds
        its change's subject lock, not the write lock)."""
        assert self.cab_approvals is not None
        source = notices.NOTICE_SOURCE
        existing = self._stored(source, delivery_id, delivery.digest)
        if existing is not None and not self._waits(existing, delivery, secret):
            return self._notice_repeat(existing, delivery, delivery_id, secret)
        if self.notice_refusals.exhausted(client) and (
            notices.waiting_run_id(delivery, secret, self.store) is None
        ):
            self.notice_refusals.throttled(client, delivery_id)
            raise RateLimited(source, self.notice_refusals.per_minute)
        # The desk reads the Table API: outside the lock, so no other delivery waits on it.
        found = notices.deliver(self.cab_approvals, delivery, secret, self.store.get_run)
        if found.refused:
            self.notice_refusals.refused(client)
        row = DeliveryFacts(source=source, delivery_id=delivery_id, event=notices.NOTICE_EVENT,
                            digest=delivery.digest, received_at=delivery.received_at)  # fmt: skip
        status = REFUSED if found.refused else DONE
        with self._writes:
            stored = self._lookup(source, delivery_id, delivery.digest)
            if stored is None:
                try:
                    with self.store.atomic() as tx:
                        self.queue.add(tx.session, row, status=status, run_id=found.run_id,
                                       reason=found.reason)  # fmt: skip
                except DeliveryStored as err:
                    stored = self._stored_meanwhile(err, source, delivery_id, delivery.digest)
            elif existing is not None and stored.id == existing.id:  # read again: the latest
                self.queue.mark(stored.id, status, reason=found.reason)
        if found.refused:
            raise notices.NoticeRefused(delivery_id, found.status, found.reason)
        return Receipt(source=source, delivery_id=delivery_id, status=DONE,
                       run_id=found.run_id, state=found.state, reason=found.reason,
                       duplicate=stored is not None)  # fmt: skip

    def _stored(self, source: str, delivery_id: str, digest: str) -> QueuedDelivery | None:
        """The stored delivery with this id, or else with this body, of `source` (takes the
        write lock: call it without)."""
        with self._writes:
            return self._lookup(source, delivery_id, digest)

    def _stored_meanwhile(
        self, err: DeliveryStored, source: str, delivery_id: str, digest: str
    ) -> QueuedDelivery:
        """The copy another serve process stored after this one looked (for a caller holding
        the write lock); `err` again when none is found."""
        found = self._lookup(source, delivery_id, digest)
        if found is None:
            raise err
        return found

    def _lookup(self, source: str, delivery_id: str, digest: str) -> QueuedDelivery | None:
        """`_stored` for a caller holding the write lock."""
        return self.queue.get(source, delivery_id) or self.queue.get_by_digest(source, digest)

    def _waits(self, existing: QueuedDelivery, delivery: Delivery, secret: str) -> bool:
        """Whether a repeated notice is read again: the change it names has a run still
        `approved` (waiting for the CAB). ServiceNow is the source of truth and the notice
        only a prompt, so a notice id taken first (by a forged notice that pre-sent
        ServiceNow's next `<sys_id>:<sys_mod_count>`, or by an earlier read that still
        waited or was refused) never keeps a waiting run from being handed off."""
        if existing.status not in (DONE, REFUSED):
            return False
        return notices.waiting_run_id(delivery, secret, self.store) is not None

    def _notice_repeat(
        self, existing: QueuedDelivery, delivery: Delivery, delivery_id: str, secret: str
    ) -> Receipt:
        """A repeated notice whose change no run waits on: answered as the first."""
        receipt = self._duplicate(notices.NOTICE_SOURCE, delivery_id, existing, delivery.digest)
        if receipt.status == REFUSED:
            status = notices.refusal_status(delivery, secret)
            raise notices.NoticeRefused(delivery_id, status, existing.reason or "", duplicate=True)
        return receipt

    def refuse_repeated(
        self, source: str, headers: Mapping[str, str], name: str, *, client: str = ""
    ) -> NoReturn:
        """Count and raise `DeliveryInvalid` (400, `repeated-header`) for a delivery that
        repeats the header `name` its source reads: a proxy in front may read one copy and
        a parser another, so neither is trusted (or `RateLimited` past the budget)."""
        delivery = Delivery(source=source, headers={k.lower(): v for k, v in headers.items()},
                            body=b"", received_at=datetime.now(UTC))  # fmt: skip
        self.flush_ended()
        refused = DeliveryInvalid(source, "", f"the header {name} is repeated",
                                  code="repeated-header")  # fmt: skip
        self._refuse_unauthenticated(delivery, refused, client)

    def refuse_oversized(
        self, source: str, headers: Mapping[str, str], *, client: str = ""
    ) -> Receipt:
        """Count and raise `PayloadTooLarge` for a body not read past the limit (or
        `RateLimited` for a client past its budget: an unread body is never authenticated)."""
        delivery = Delivery(
            source=source,
            headers={k.lower(): v for k, v in headers.items()},
            body=b"",
            received_at=datetime.now(UTC),
        )
        self.flush_ended()
        limit = self.settings.max_body_bytes
        declared = delivery.header("content-length")
        size = int(declared) if declared.isdigit() and len(declared) < 20 else limit + 1
        self._refuse_unauthenticated(delivery, PayloadTooLarge(source, size, limit), client)

    def flush_ended(self) -> None:
        """Publish the counts of minutes that are over (call at least once a minute)."""
        self.rejections.flush(only_ended=True)
        self.duplicates.flush(only_ended=True)
        self.notice_refusals.tally.flush(only_ended=True)

    def close(self) -> None:
        """Store what is waiting, then publish the rejection and duplicate counts still
        pending (call at shutdown)."""
        self.writer.close()
        self.rejections.flush()
        self.duplicates.flush()
        self.notice_refusals.tally.flush()

    def _refuse_unauthenticated(
        self, delivery: Delivery, err: DeliveryRejected | DeliveryInvalid, client: str
    ) -> NoReturn:
        """Count and raise `err`, or `RateLimited` once `client` is past its budget."""
        if self.budget.exhausted(delivery.source, client):
            limited = RateLimited(delivery.source, self.budget.per_minute)
            self.rejections.count(
                source=delivery.source, reason=limited.code, status=limited.status,
                client=client, delivery_id="", detail=limited.reason,
            )  # fmt: skip
            raise limited from None
        self._count_rejection(delivery, err, client)
        raise err

    def _authenticate(self, adapter: WebhookSource, delivery: Delivery) -> None:
        """Size, secret and signature (or token): cheap, and all a 429 may stand in for."""
        limit = self.settings.max_body_bytes
        if len(delivery.body) > limit:
            raise PayloadTooLarge(delivery.source, len(delivery.body), limit)
        secret = self.settings.secret_for(delivery.source)
        if not secret:
            raise SignatureInvalid(delivery.source, "", "no webhook secret is configured")
        adapter.verify(delivery, secret)

    def _read(self, adapter: WebhookSource, delivery: Delivery) -> ParsedDelivery:
        """The authenticated delivery's content, names and replay window."""
        parsed = adapter.read(delivery)
        self._check_names(delivery.source, parsed)
        if parsed.sent_at is not None:
            skew = (delivery.received_at - parsed.sent_at).total_seconds()
            if abs(skew) > self.settings.replay_window_s:
                raise DeliveryStale(
                    delivery.source, parsed.delivery_id, skew, self.settings.replay_window_s
                )
        return parsed

    def _forge_event(self, delivery: Delivery, parsed: ParsedDelivery) -> ForgeEvent | str | None:
        """The forge review or merge event the delivery is, when a reconciler is wired."""
        if self.reconciler is None:
            return None
        return read_forge_event(delivery, parsed.delivery_id)

    def reconcile(
        self,
        source: str,
        parsed: ParsedDelivery,
        event: ForgeEvent,
        *,
        digest: str,
        received_at: datetime,
    ) -> Receipt:
        """Store a forge review or merge delivery with what reconciliation made of it (one
        transaction: the delivery, its outcome event, `webhook-reconciled`), then send any
        alert; a repeated delivery id or body answers with the first one's outcome."""
        with self._subjects.hold(f"forge:{event.forge}:{event.repository}:{event.branch}"):
            return self._reconcile(source, parsed, event, digest=digest, received_at=received_at)

    def _reconcile(
        self,
        source: str,
        parsed: ParsedDelivery,
        event: ForgeEvent,
        *,
        digest: str,
        received_at: datetime,
    ) -> Receipt:
        """`reconcile` under the event's subject lock (not the write lock)."""
        assert self.reconciler is not None
        existing = self._stored(source, parsed.delivery_id, digest)
        if existing is not None:
            return self._duplicate(source, parsed.delivery_id, existing, digest)
        # The reconciler asks the forge (REST calls): outside the lock, so no other
        # delivery waits on the forge. A copy stored meanwhile by another request wins and
        # this outcome is dropped (the desk refuses a second recording of the same review).
        found = self.reconciler.reconcile(event)
        row = DeliveryFacts(
            source=source,
            delivery_id=parsed.delivery_id,
            event=parsed.event,
            digest=digest,
            received_at=received_at,
        )
        with self._writes:
            existing = self._lookup(source, parsed.delivery_id, digest)
            if existing is None:
                try:
                    self._record_reconciled(source, parsed, digest, row, found)
                except DeliveryStored as err:
                    existing = self._stored_meanwhile(err, source, parsed.delivery_id, digest)
        if existing is not None:
            return self._duplicate(source, parsed.delivery_id, existing, digest)
        self.reconciler.send_alert(found)
        return Receipt(
            source=source,
            delivery_id=parsed.delivery_id,
            status=found.status,
            run_id=found.run_id,
            state=found.state,
            reason=found.reason,
        )

    def _record_reconciled(
        self,
        source: str,
        parsed: ParsedDelivery,
        digest: str,
        row: DeliveryFacts,
        found: Reconciliation,
    ) -> None:
        """Store the reconciled delivery with its events, in one transaction; DeliveryStored
        (nothing written) when another process stored it first."""
        with self.store.atomic() as tx:
            self.queue.add(tx.session, row, status=found.status, run_id=found.run_id,
                           reason=found.reason)  # fmt: skip
            if found.event is not None:
                tx.append(replace(found.event, delivery_id=parsed.delivery_id))
            tx.append(WebhookReconciled(actor=f"intake:{source}", run_id=found.run_id or "",
                                        source=source, delivery_id=parsed.delivery_id,
                                        event=parsed.event, payload_digest=digest,
                                        outcome=found.outcome,
                                        reason=found.reason))  # fmt: skip

    @staticmethod
    def _check_names(source: str, parsed: ParsedDelivery) -> None:
        """The delivery id and event name (unsigned headers for some senders): one line of
        printable text, of bounded size."""
        if len(parsed.delivery_id) > MAX_ID:
            raise DeliveryInvalid(source, "", f"the delivery id is longer than {MAX_ID} characters")
        if len(parsed.event) > MAX_EVENT:
            raise DeliveryInvalid(source, "", f"the event is longer than {MAX_EVENT} characters")
        try:
            check_line(parsed.delivery_id, what="the delivery id")
            check_line(parsed.event, what="the event")
        except TextRefused as err:
            raise DeliveryInvalid(source, "", str(err), code="control-characters") from None

    def _count_rejection(
        self, delivery: Delivery, err: DeliveryRejected | DeliveryInvalid, client: str
    ) -> None:
        status = err.status if isinstance(err, DeliveryRejected) else 400
        self.budget.spend(delivery.source, client)
        self.rejections.count(
            source=delivery.source,
            reason=err.code,
            status=status,
            client=client,
            delivery_id=err.delivery_id,
            detail=err.reason,
        )

    def _publisher(self, kind: type[AuditEvent]) -> Callable[[Sequence[SourceCount]], None]:
        """What publishes a minute's tally: one `kind` audit event (`WebhookDuplicate`,
        `WebhookRejections`, ...) per entry, acted by `intake:<source>`, in one transaction."""

        def publish(counts: Sequence[SourceCount]) -> None:
            limit = self.settings.rejection_field_chars
            with self._writes, self.store.atomic() as tx:
                for entry in counts:
                    tx.append(kind(actor=f"intake:{entry.source}", **entry.audit_data(limit)))

        return publish

    def accept(
        self, source: str, parsed: ParsedDelivery, *, digest: str, received_at: datetime
    ) -> Receipt:
        """Store an authenticated delivery and decide it (webhooks and schedules alike).

        The delivery is stored first (`DeliveryWriter`: group commit, durable before this
        returns), with its parsed trigger when it asks for work; then decided here
        (`decide_at_intake`) or left `queued` for the worker that claims it."""
        new = self._new_delivery(source, parsed, digest, received_at)
        return self.answer(new, self.writer.write(new))

    def answer(self, new: NewDelivery, written: Written) -> Receipt:
        """The answer for a delivery `writer` stored: the first copy's outcome for a repeat
        (the same id, or the same signed body under another id: GitHub and GitLab sign no
        timestamp, so a replayed body must not start a second run), else its decision
        (made here when `decide_at_intake`). Blocks only for a repeat or a decision."""
        facts, row = new.facts, written.row
        if not written.first:
            return self._duplicate(facts.source, facts.delivery_id, row, facts.digest)
        if new.trigger is None or row.status == QUEUED:
            receipt = Receipt(source=facts.source, delivery_id=row.delivery_id,
                              status=row.status, reason=row.reason)  # fmt: skip
        else:
            with self._writes:
                receipt = self._decide(row, new.trigger)
        if receipt.status == QUEUED and self.on_queued is not None:
            self.on_queued()
        return receipt

    def _new_delivery(
        self, source: str, parsed: ParsedDelivery, digest: str, received_at: datetime
    ) -> NewDelivery:
        """What is stored of an authenticated delivery: `ignored` (with its audit event)
        when it asks for no work, else `received` to be decided here or `queued` for a
        worker to decide, with its parsed trigger."""
        facts = DeliveryFacts(
            source=source,
            delivery_id=parsed.delivery_id,
            event=parsed.event,
            digest=digest,
            received_at=received_at,
        )
        if parsed.trigger is None:
            ignored = WebhookIgnored(actor=f"intake:{source}", source=source,
                                     delivery_id=parsed.delivery_id, event=parsed.event,
                                     reason=parsed.ignored)  # fmt: skip
            return NewDelivery(facts=facts, status=IGNORED, reason=parsed.ignored, audit=ignored)
        status = RECEIVED if self.settings.decide_at_intake else QUEUED
        return NewDelivery(facts=facts, status=status, trigger=parsed.trigger)

    def _decided(self, existing: QueuedDelivery, *, wait_s: float = 10.0) -> QueuedDelivery:
        """`existing` once its decision at intake (`received`, no run yet) is over, or as it
        stands after `wait_s` seconds (a process that stopped mid-decision: a worker decides
        it once the sweeper queues it again)."""
        deadline = time.monotonic() + wait_s
        while existing.status == RECEIVED and existing.run_id is None:
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
            existing = self.queue.get_by_id(existing.id) or existing
        return existing

    def _decide(self, row: QueuedDelivery, trigger: TriggerEvent) -> Receipt:
        """Decide the delivery just stored `received` and queue it when its run may start
        (a worker decides it instead when this fails)."""
        try:
            decided = self.decider.decide(row, trigger)
        except BaseException:
            self.queue.mark(row.id, QUEUED)
            raise
        if decided.status == QUEUED and decided.decided_here:
            self.queue.mark(row.id, QUEUED)
        run = decided.run
        return Receipt(
            source=row.source,
            delivery_id=row.delivery_id,
            status=decided.status,
            run_id=run.id if run else None,
            state=run.state.value if run else None,
            reason=decided.reason,
        )

    def _duplicate(
        self, source: str, delivery_id: str, existing: QueuedDelivery, digest: str
    ) -> Receipt:
        """Count a repeat and answer with the first delivery's outcome (once it is decided,
        when it is being decided at intake right now)."""
        existing = self._decided(existing)
        self.duplicates.count(
            source=source,
            payload_digest=digest,
            run_id=existing.run_id or "",
            first_delivery_id=existing.delivery_id,
            delivery_id=delivery_id,
        )
        run = self.store.get_run(existing.run_id) if existing.run_id else None
        return Receipt(
            source=source,
            delivery_id=existing.delivery_id,
            status=existing.status,
            run_id=existing.run_id,
            state=run.state.value if run else None,
            reason=run.reason if run else existing.reason,
            duplicate=True,
        )
