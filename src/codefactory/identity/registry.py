"""The agent registry in the store: every agent a row, every change to it an audit event.

The default recipe agent is registered on first use, so a fresh factory runs with no set-up;
any other agent must be created (`codefactory agents create`) before it can act.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from codefactory.audit.port import AuditLog
from codefactory.domain import AuditEvent
from codefactory.identity.agent_keys import AgentKeys
from codefactory.identity.agents import (
    STATUS_MOVES,
    AgentIdentity,
    AgentStatus,
    check_agent_id,
)
from codefactory.identity.errors import AgentInvalid, AgentUnavailable
from codefactory.store.identity_tables import AgentRow

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
    ) -> None:
        self._engine = engine
        self._audit = audit
        self.keys = keys
        self.issuer = issuer
        self._default = default

    def create(
        self,
        agent_id: str,
        *,
        display_name: str,
        owner: str,
        engines: Sequence[str],
        actor: str,
        active: bool = True,
    ) -> AgentIdentity:
        """Register an agent (active, or `created` to activate later) and make its key."""
        check_agent_id(agent_id)
        if not owner.strip():
            raise AgentInvalid(f"agent {agent_id} needs an accountable human owner")
        if not engines:
            raise AgentInvalid(f"agent {agent_id} needs at least one engine it may use")
        if self.get(agent_id) is not None:
            raise AgentInvalid(f"agent {agent_id} already exists")
        key = self.keys.create(agent_id, comment=agent_id)
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
            ssh_public_key=key.openssh,
            created_at=now,
            updated_at=now,
        )
        with Session(self._engine) as session, session.begin():
            session.add(row)
            session.flush()
            self._record(session, "agent-created", actor, row, ssh_key=key.fingerprint)
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
        self, agent_id: str, status: AgentStatus, *, actor: str, reason: str = ""
    ) -> AgentIdentity:
        """Move the agent along its lifecycle, with its audit event; revocation is final."""
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
            self._record(session, STATUS_EVENTS[status], actor, row, previous=current.value)
        return self.require(agent_id)

    def require_active(self, agent_id: str) -> AgentIdentity:
        """The agent if it may act now (registering the default agent on first use)."""
        agent = self.get(agent_id)
        if agent is None and self._default is not None and agent_id == self._default.id:
            agent = self._register_default(self._default)
        if agent is None:
            raise AgentUnavailable(agent_id, "unknown")
        if agent.status is not AgentStatus.ACTIVE:
            raise AgentUnavailable(agent_id, agent.status.value)
        return agent

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
        event = AuditEvent(name=name, actor=actor, data=data, at=datetime.now(UTC))
        self._audit.append(event, session=session)
