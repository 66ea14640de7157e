"""Intake of a CLI ticket (`codefactory trigger`, the demo): a Jira ticket for a checkout
becomes a stored trigger and a run driven as far as it goes, or a refusal with the reason.

An unreadable ticket still leaves a trace (a trigger row, a `refused` run, audit events):
every trigger is a control point, including the ones that fail. The sponsor is the
logged-in caller as the directory knows them; the ticket's reporter is only an attribute.
Webhook deliveries are `runs/intake.py`'s.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from codefactory.audit.events import SponsorRefused
from codefactory.domain import ChangeKind, Run, RunState, TriggerEvent
from codefactory.identity.directory import Directory
from codefactory.runs.loop import RunLoop
from codefactory.store.port import RunRepository
from codefactory.triggers.caller import Caller, local_caller
from codefactory.triggers.errors import TicketInvalid
from codefactory.triggers.jira import JiraTicketSource
from codefactory.triggers.sponsors import sponsorship

if TYPE_CHECKING:
    from codefactory.config import Settings


class _People(Protocol):
    @property
    def directory(self) -> Directory: ...


class TicketWiring(Protocol):
    """What `accept_ticket` reads of the factory (`codefactory.factory.Factory` is one):
    runs/ never imports the composition root, it is handed the parts."""

    @property
    def settings(self) -> Settings: ...

    @property
    def store(self) -> RunRepository: ...

    @property
    def identity(self) -> _People: ...

    @property
    def loop(self) -> RunLoop: ...


def refuse_delivery(
    store: RunRepository,
    *,
    source: str,
    payload: bytes,
    repository: str,
    reason: str,
    caller: Caller | None = None,
) -> Run:
    """Record an unparseable delivery as a trigger and a run refused with `reason`;
    `repository` is the canonical id of the repository it was meant for, `caller` who
    handed it in (the CLI's logged-in caller)."""
    event = TriggerEvent(
        source=source,
        kind=ChangeKind.GENERAL_CHANGE,
        external_id="(unparseable)",
        actor=caller.identity if caller else "(unknown)",
        repository=repository,
        title="(unparseable delivery)",
        body="",
        received_at=datetime.now(UTC),
        payload_digest="sha256:" + hashlib.sha256(payload).hexdigest(),
        sender_kind=caller.kind.value if caller else "",
        sender=caller.identity if caller else "",
    )
    return refuse_event(store, event, reason=reason, actor=f"intake:{source}")


def refuse_event(
    store: RunRepository,
    event: TriggerEvent,
    *,
    reason: str,
    actor: str,
    sponsor_refused: bool = False,
    agent_id: str = "",
) -> Run:
    """Store `event` with a run refused at once with `reason`; with `sponsor_refused`, a
    `sponsor-refused` event is recorded beside the refusal."""
    with store.atomic() as tx:
        trigger_id = tx.record_trigger(event)
        run_id = tx.create_run(trigger_id=trigger_id, event=event, sponsor="", agent_id=agent_id)
        if sponsor_refused:
            tx.append(SponsorRefused(actor=actor, run_id=run_id, trigger_id=trigger_id,
                                     source=event.source, sender_kind=event.sender_kind,
                                     sender=event.sender, reason=reason))  # fmt: skip
        tx.transition(run_id, RunState.REFUSED, reason=reason, actor=actor)
    return store.require_run(run_id)


def accept_ticket(
    factory: TicketWiring,
    *,
    payload: bytes,
    repo: Path,
    engine: str = "",
    caller: Caller | None = None,
    drive: Callable[[str], Run | None] | None = None,
) -> Run:
    """Parse a Jira ticket for the checkout `repo`, start its run and drive it as far as it
    goes: through `drive` (a worker's lease-holding driver, `dispatch.driver.RunDriver`) when
    given, else directly. The run names the repository by its canonical id
    (`triggers.repositories`' id for that checkout, else `local:<path>`;
    docs/repositories.md). `engine` asks for an engine by registry name; the registry and
    policy still decide.

    The sponsor is the logged-in caller (`caller`, default the OS account running the
    command, `triggers.caller.local_caller`) as the directory knows them, holding the
    `sponsor` role; the ticket's reporter is only an untrusted attribute. A caller the
    directory does not know, a ticket over `triggers.max_body_bytes`, nested too deep, or
    whose key, summary or labels carry control characters: a `refused` run with the reason."""
    source = JiraTicketSource()
    who = caller or local_caller()
    repository = factory.settings.triggers.repository_id(repo)
    limit = factory.settings.triggers.max_body_bytes
    try:
        if len(payload) > limit:
            raise TicketInvalid(source.name, f"{len(payload)} bytes is over the {limit}-byte limit")
        event = source.parse(payload, repository=repository)
    except TicketInvalid as err:
        return refuse_delivery(
            factory.store,
            source=source.name,
            payload=payload,
            repository=repository,
            reason=str(err),
            caller=who,
        )
    event = replace(event, actor=who.identity, sender_kind=who.kind.value, sender=who.identity)
    found = sponsorship(event, directory=factory.identity.directory, policy=factory.loop.policy)
    event = replace(event, caused_by=found.caused_by)
    if found.refusal:
        return refuse_event(
            factory.store,
            event,
            reason=found.refusal,
            actor="identity",
            sponsor_refused=True,
            agent_id=factory.settings.agent_id,
        )
    checkout = repo.expanduser().resolve()
    run_id = factory.loop.submit(
        event,
        sponsor=found.sponsor,
        agent_id=factory.settings.agent_id,
        engine=engine,
        repository_path=str(checkout),
    )
    if drive is None:
        return factory.loop.execute(run_id, repo=checkout)
    return drive(run_id) or factory.store.require_run(run_id)
