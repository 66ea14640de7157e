"""The agent registry in the store: every agent a row, every change to it an audit event.

The default recipe agent is registered on first use, so a fresh factory runs with no set-up;
any other agent must be created (`codefactory agents create`) before it can act.

The row is not the authority: an agent may act only when its row says `active` and so do its
lifecycle events, each verified again with the signed statement it carries
(`identity.agent_status`). A row that disagrees (edited in the database) leaves the agent
unavailable, says why, and is audited (`agent-status-disputed`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from codefactory.audit.errors import EventNotRecordable
from codefactory.audit.port import AuditLog
from codefactory.audit.sql import check_recordable
from codefactory.domain import UnknownEvent
from codefactory.identity.agent_keys import AgentKeys
from codefactory.identity.agent_status import (
    DISPUTED_EVENT,
    LIFECYCLE_EVENTS,
    LifecycleEvent,
    SignedStatus,
    signed_status,
)
from codefactory.identity.agents import (
    STATUS_MOVES,
    AgentIdentity,
    AgentStatus,
    check_agent_id,
)
from codefactory.identity.directory import Role
from codefactory.identity.errors import AgentInvalid, AgentUnavailable
from codefactory.identity.signed_events import reverify, signed_fields
from codefactory.identity.statements import StatementRefused, StatementVerifier, VerifiedStatement
from codefactory.store.identity_tables import AgentRow
from codefactory.store.models import AuditEventRow

# Audit event names of each status an agent moves to.
STATUS_EVENTS = {
    AgentStatus.ACTIVE: "agent-activated",
    AgentStatus.SUSPENDED: "agent-suspended",
    AgentStatus.REVOKED: "agent-revoked",
}


def _aware(value: datetime) -> datetime:
    """SQLite hands datetimes back naive; they were written in UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _identity(row: AgentRow) -> AgentIdentity:
    return AgentIdentity(
        id=row.id,
        display_name=row.display_name,
        issuer=row.issuer,
        owner=row.owner,
        engines=tuple(row.engines),
        status=AgentStatus(row.status),
        status_reason=row.status_reason,
        ssh_public_key=row.ssh_public_key,
        created_at=_aware(row.created_at),
        updated_at=_aware(row.updated_at),
    )


KEY_SHAPE = "SHA256:" + "A" * 43
"""The shape of an SSH key fingerprint (`ssh_key` in `agent-created`), for checking the
event before the key exists."""


class SqlAgentRegistry:
    """An `AgentDirectory` over the `agents` table, with each agent's key files."""

    def __init__(
        self,
        engine: Engine,
        *,
        audit: AuditLog,
        keys: AgentKeys,
        issuer: str,
        default: AgentIdentity | None = None,
        verifier: StatementVerifier | None = None,
    ) -> None:
        self._engine = engine
        self._audit = audit
        self.keys = keys
        self.issuer = issuer
        self._default = default
        self._verifier = verifier
        """Checks the statements the lifecycle events carry; without it no signed act counts
        (only the factory's own default agent and `created` agents)."""

    def create(
        self,
        agent_id: str,
        *,
        display_name: str,
        owner: str,
        engines: Sequence[str],
        actor: str,
        active: bool = True,
        statement: VerifiedStatement | None = None,
    ) -> AgentIdentity:
        """Register an agent (active, or `created` to activate later) and make its key;
        `statement` is the signed `agent-activate` that allows an active one, kept in its
        `agent-created` event."""
        check_agent_id(agent_id)
        if not owner.strip():
            raise AgentInvalid(f"agent {agent_id} needs an accountable human owner")
        if not engines:
            raise AgentInvalid(f"agent {agent_id} needs at least one engine it may use")
        if self.get(agent_id) is not None:
            raise AgentInvalid(f"agent {agent_id} already exists")
        now = datetime.now(UTC)
        status = AgentStatus.ACTIVE if active else AgentStatus.CREATED
        row = AgentRow(
            id=agent_id,
            display_name=display_name,
            issuer=self.issuer,
            owner=owner,
            engines=list(engines),
            status=status.value,
            status_reason="",
            ssh_public_key="",
            created_at=now,
            updated_at=now,
        )
        signed = signed_fields(statement) if statement is not None else {}
        try:  # before the key is made: an agent that cannot be recorded leaves no key behind
            check_recordable(self._event("agent-created", actor, row, ssh_key=KEY_SHAPE, **signed))
        except EventNotRecordable as err:
            raise AgentInvalid(f"agent {agent_id} cannot be recorded: {err.message}") from None
        key = self.keys.create(agent_id, comment=agent_id)
        row.ssh_public_key = key.openssh
        with Session(self._engine) as session, session.begin():
            session.add(row)
            session.flush()
            self._record(session, "agent-created", actor, row, ssh_key=key.fingerprint, **signed)
        return self.require(agent_id)

    def get(self, agent_id: str) -> AgentIdentity | None:
        """The agent, or None."""
        with Session(self._engine) as session:
            row = session.get(AgentRow, agent_id)
            return _identity(row) if row else None

    def require(self, agent_id: str) -> AgentIdentity:
        """The agent whatever its status; AgentUnavailable if unknown."""
        agent = self.get(agent_id)
        if agent is None:
            raise AgentUnavailable(agent_id, "unknown")
        return agent

    def search(self) -> list[AgentIdentity]:
        """Every agent, by id."""
        with Session(self._engine) as session:
            return [
                _identity(row) for row in session.scalars(select(AgentRow).order_by(AgentRow.id))
            ]

    def set_status(
        self,
        agent_id: str,
        status: AgentStatus,
        *,
        actor: str,
        reason: str = "",
        statement: VerifiedStatement | None = None,
    ) -> AgentIdentity:
        """Move the agent along its lifecycle, with its audit event; revocation is final.
        `statement` is the signed governance act, kept in the event: without it the move
        is recorded but proves nothing (an activation leaves the agent unable to act)."""
        with Session(self._engine) as session, session.begin():
            row = session.get(AgentRow, agent_id, with_for_update=True)
            if row is None:
                raise AgentUnavailable(agent_id, "unknown")
            current = AgentStatus(row.status)
            if status not in STATUS_MOVES[current]:
                raise AgentInvalid(
                    f"agent {agent_id} is {current.value}; it cannot become {status.value}"
                )
            row.status, row.status_reason = status.value, reason
            row.updated_at = datetime.now(UTC)
            signed = signed_fields(statement) if statement is not None else {}
            name = STATUS_EVENTS[status]
            self._record(session, name, actor, row, previous=current.value, **signed)
        return self.require(agent_id)

    def require_active(self, agent_id: str) -> AgentIdentity:
        """The agent if it may act now (registering the default agent on first use): its row
        and its verified lifecycle events both say `active`; `AgentUnavailable` otherwise,
        naming a row that disagrees with the events (tampering, audited)."""
        agent = self.get(agent_id)
        if agent is None and self._default is not None and agent_id == self._default.id:
            agent = self._register_default(self._default)
        if agent is None:
            raise AgentUnavailable(agent_id, "unknown")
        if agent.status is not AgentStatus.ACTIVE:
            raise AgentUnavailable(agent_id, agent.status.value)
        signed = self.signed_status(agent_id)
        if signed.status is not AgentStatus.ACTIVE:
            said = signed.status.value if signed.status else "never created"
            reason = (
                f"disputed: its row says active but its signed governance events say {said} "
                "(the row was changed without a signed act)"
            )
            self._disputed(agent_id, agent.status, signed)
            raise AgentUnavailable(agent_id, reason)
        return agent

    def signed_status(self, agent_id: str) -> SignedStatus:
        """What the agent's lifecycle events prove, each checked with its signed statement."""
        with Session(self._engine) as session:
            rows = session.scalars(
                select(AuditEventRow)
                .where(AuditEventRow.name.in_(LIFECYCLE_EVENTS))
                .order_by(AuditEventRow.seq)
            ).all()
            events = [_lifecycle(row) for row in rows]
        mine = [
            event
            for event in events
            if event is not None and event.data.get("agent_id") == agent_id
        ]
        default_id = self._default.id if self._default is not None else None
        return signed_status(mine, agent_id=agent_id, default_id=default_id, verify=self._verify)

    def _verify(self, data: Mapping[str, Any], action: str) -> VerifiedStatement:
        if self._verifier is None:
            raise StatementRefused("no directory to check the statement against")
        target = str(data.get("agent_id", ""))
        expect = {"action": action, "target": target}
        return reverify(self._verifier, data, role=Role.SECURITY, expect=expect)

    def _disputed(self, agent_id: str, row: AgentStatus, signed: SignedStatus) -> None:
        """`agent-status-disputed`, once for each agent, row status and signed status."""
        said = signed.status.value if signed.status else "never created"
        last = self._audit.latest(DISPUTED_EVENT)
        if last is not None and (
            last.data.get("agent_id"),
            last.data.get("row_status"),
            last.data.get("signed_status"),
        ) == (agent_id, row.value, said):
            return
        event = UnknownEvent(
            kind=DISPUTED_EVENT,
            actor="factory",
            payload={
                "agent_id": agent_id,
                "row_status": row.value,
                "signed_status": said,
                "ignored": list(signed.ignored)[:20],
            },
            at=datetime.now(UTC),
        )
        self._audit.append(event)

    def _register_default(self, default: AgentIdentity) -> AgentIdentity:
        try:
            return self.create(
                default.id,
                display_name=default.display_name,
                owner=default.owner,
                engines=default.engines,
                actor="factory",
            )
        except (AgentInvalid, IntegrityError):  # another process registered it first
            return self.require(default.id)

    def _record(self, session: Session, name: str, actor: str, row: AgentRow, **extra: str) -> None:
        self._audit.append(self._event(name, actor, row, **extra), session=session)

    @staticmethod
    def _event(name: str, actor: str, row: AgentRow, **extra: str) -> UnknownEvent:
        data = {
            "agent_id": row.id,
            "display_name": row.display_name,
            "issuer": row.issuer,
            "owner": row.owner,
            "engines": list(row.engines),
            "status": row.status,
            "reason": row.status_reason,
            **extra,
        }
        return UnknownEvent(kind=name, actor=actor, payload=data, at=datetime.now(UTC))


def _lifecycle(row: AuditEventRow) -> LifecycleEvent | None:
    """The stored event, or None when its data is not a JSON object (it proves nothing)."""
    try:
        data = json.loads(row.data)
        at = datetime.fromisoformat(row.at)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    return LifecycleEvent(seq=row.seq, name=row.name, actor=row.actor, at=at, data=data)
