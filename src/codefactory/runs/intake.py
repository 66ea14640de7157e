"""Intake: a raw ticket becomes a stored trigger and a run, or a refused run with the reason.

An unreadable delivery still leaves a trace (a trigger row, a `refused` run, audit events):
every trigger is a control point, including the ones that fail.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from codefactory.domain import ChangeKind, Run, RunState, TriggerEvent
from codefactory.store.runs import RunStore
from codefactory.triggers.errors import TicketInvalid
from codefactory.triggers.jira import JiraTicketSource

if TYPE_CHECKING:
    from codefactory.factory import Factory


def refuse_delivery(
    store: RunStore, *, source: str, payload: bytes, repository: str, reason: str
) -> Run:
    """Record an unparseable delivery as a trigger and a run refused with `reason`."""
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


def accept_ticket(factory: Factory, *, payload: bytes, repo: Path) -> Run:
    """Parse a Jira ticket for `repo`, start its run and drive it as far as it goes."""
    source = JiraTicketSource()
    repository = str(repo.resolve())
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
    run_id = factory.loop.submit(event, sponsor=event.actor, agent_id=factory.settings.agent_id)
    return factory.loop.execute(run_id, repo=repo)
