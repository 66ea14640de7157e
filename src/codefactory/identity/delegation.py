"""Delegation tokens: a run acts for its sponsor through its agent, and can prove it.

When policy authorizes a run, the issuer signs a short-lived JWT: `sub` the accountable human
(the sponsor), `act.sub` the agent (RFC 8693 §4.1), `scope` what policy granted, `run_id`,
`jti`, `exp` within the run's budget, and who else took part as the factory recorded them at
authorization: `codefactory:caused_by` (the person who caused the trigger, `user:<id>`, or
empty) and `codefactory:requested_by` (the trigger's actor). Segregation of duties reads these
from the verified token (`verified_claims`), never from rows an insider can edit. Every
component acting for the run checks it first
(RFC 8725 §3: algorithm allow-list, explicit type, `iss`, `aud`, `sub`, expiry) and both
outcomes are audited; a refusal names the run, the token and the reason.

A revocation is a signed governance act (`identity revoke-token`): a token counts as revoked
when its row says so *or* the audit log holds the act (`governance-authorized` of action
`token-revoke` on its jti in the `governance` ledger, or the run's `delegation-revoked`), so
clearing `revoked_at` in the database revives nothing.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from codefactory.audit.events import (
    DelegationChecked,
    DelegationIssued,
    DelegationRevoked,
    GovernanceAuthorized,
    typed,
)
from codefactory.audit.events import DelegationRefused as DelegationRefusedEvent
from codefactory.audit.port import AuditLog
from codefactory.domain import AuditEvent, Run
from codefactory.identity.agents import AgentIdentity
from codefactory.identity.errors import AgentUnavailable, DelegationRefused, IdentityError
from codefactory.identity.port import (
    CAUSED_BY_CLAIM,
    REQUESTED_BY_CLAIM,
    AgentDirectory,
    DelegationToken,
    Issuer,
)
from codefactory.identity.scope import Scope, grant
from codefactory.identity.tokens import TokenInvalid, open_token, sign_token
from codefactory.store.identity_tables import DelegationTokenRow
from codefactory.store.trigger_tables import TriggerDetailRow

GOVERNANCE_LEDGER = "governance"  # identity.governance.LEDGER (read here, never written)

LEEWAY_S = 5  # clock skew tolerated on `nbf` (RFC 7519 §4.1.5)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class DelegationAuthority:
    """Issues, checks and revokes runs' delegation tokens (the default `Delegation`)."""

    def __init__(
        self,
        engine: Engine,
        *,
        issuer: Issuer,
        audit: AuditLog,
        agents: AgentDirectory,
        audience: str,
        ttl_s: int,
        scope_paths: dict[str, list[str]],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._engine = engine
        self.issuer = issuer
        self._audit = audit
        self._agents = agents
        self.audience = audience
        self.ttl_s = ttl_s
        self.scope_paths = scope_paths
        self._clock = clock

    def issue(self, run: Run, agent: AgentIdentity, *, session: Session) -> DelegationToken:
        """Sign the run's token and store it with its audit event, in `session`'s transaction.

        The audit event holds the claims and the token's SHA-256, not the bearer token
        itself; `audit explain --json` shows the token as issued, from the store.
        """
        now = self._clock()
        issued_at = int(now.timestamp())
        scope = grant(repository=run.repository, kind=run.kind.value, scope_paths=self.scope_paths)
        caused_by, requested_by = _parties(session, run)
        claims: dict[str, Any] = {
            "iss": self.issuer.name,
            "sub": run.sponsor,
            "act": {"sub": agent.id},
            "aud": self.audience,
            "scope": scope.to_claim(),
            "run_id": run.id,
            "jti": uuid.uuid4().hex,
            "iat": issued_at,
            "nbf": issued_at,
            "exp": issued_at + self.ttl_s,
            CAUSED_BY_CLAIM: caused_by,
            REQUESTED_BY_CLAIM: requested_by,
        }
        token, kid = sign_token(claims, self.issuer)
        session.add(
            DelegationTokenRow(
                jti=claims["jti"],
                run_id=run.id,
                agent_id=agent.id,
                sponsor=run.sponsor,
                token=token,
                issued_at=datetime.fromtimestamp(issued_at, UTC),
                expires_at=datetime.fromtimestamp(claims["exp"], UTC),
                revoked_at=None,
                revoked_reason="",
            )
        )
        digest = hashlib.sha256(token.encode()).hexdigest()
        self._audit.append(
            DelegationIssued(
                actor=f"issuer:{self.issuer.name}",
                run_id=run.id,
                jti=claims["jti"],
                kid=kid,
                claims=claims,
                token_sha256=digest,
                at=now,
            ),
            session=session,
        )
        return DelegationToken(jti=claims["jti"], token=token, claims=claims)

    def token_for(self, run_id: str) -> DelegationToken | None:
        """The run's latest token as issued (verified claims are `check`'s job)."""
        with Session(self._engine) as session:
            row = self._latest(session, run_id)
        if row is None:
            return None
        try:
            _, claims = open_token(row.token, self.issuer.public_keys())
        except TokenInvalid:
            claims = {}
        return DelegationToken(jti=row.jti, token=row.token, claims=claims)

    def verified_claims(self, run: Run) -> dict[str, Any]:
        """The claims of the run's latest token, its signature checked with the issuer's
        (pinned) keys and its `run_id`, `jti`, `iss` and `aud` checked; no time, scope or
        revocation check (a reviewer's verdict may come after the token expired). Raises
        `DelegationRefused` (no token, not genuine, another run's)."""
        with Session(self._engine) as session:
            row = self._latest(session, run.id)
        if row is None:
            raise DelegationRefused(run.id, "", "review", "no delegation token was issued")
        try:
            _, claims = open_token(row.token, self.issuer.public_keys())
        except TokenInvalid as error:
            raise DelegationRefused(
                run.id, row.jti, "review", f"token {row.jti} is not genuine: {error}"
            ) from None
        problems = [
            f"{name} {claims.get(name)!r}"
            for name, wanted in (
                ("run_id", run.id),
                ("jti", row.jti),
                ("iss", self.issuer.name),
                ("aud", self.audience),
            )
            if claims.get(name) != wanted
        ]
        if problems:
            raise DelegationRefused(
                run.id, row.jti, "review", "the token does not match: " + ", ".join(problems)
            )
        return claims

    def revocation(self, jti: str, run_id: str) -> str | None:
        """Why the audit log says token `jti` was revoked (a signed governance act, or the
        run's `delegation-revoked` event), or None; read-only."""
        for record in self._audit.events(GOVERNANCE_LEDGER):
            match typed(record):
                case GovernanceAuthorized(action="token-revoke", target=target) if target == jti:
                    return f"revoked by {record.actor} (audit index {record.seq})"
        for record in self._audit.events(run_id):
            match typed(record):
                case DelegationRevoked(jti=revoked) if revoked == jti:
                    return f"revoked by {record.actor} (audit index {record.seq})"
        return None

    def inspect(self, run_id: str) -> dict[str, Any] | None:
        """The run's token as issued, what its signature says and whether it was revoked,
        without auditing anything (for `audit explain`)."""
        with Session(self._engine) as session:
            row = self._latest(session, run_id)
        if row is None:
            return None
        described: dict[str, Any] = {
            "jti": row.jti,
            "token": row.token,
            "issued_at": _aware(row.issued_at).isoformat(),
            "expires_at": _aware(row.expires_at).isoformat(),
            "revoked_at": _aware(row.revoked_at).isoformat() if row.revoked_at else None,
            "revoked_reason": row.revoked_reason,
            "revoked_in_log": self.revocation(row.jti, run_id),
        }
        try:
            header, claims = open_token(row.token, self.issuer.public_keys())
        except TokenInvalid as error:
            return {**described, "signature": f"invalid: {error}", "header": {}, "claims": {}}
        return {**described, "signature": "valid", "header": header, "claims": claims}

    @staticmethod
    def _latest(session: Session, run_id: str) -> DelegationTokenRow | None:
        return session.scalars(
            select(DelegationTokenRow)
            .where(DelegationTokenRow.run_id == run_id)
            .order_by(DelegationTokenRow.issued_at.desc())
            .limit(1)
        ).first()

    def check(
        self, run: Run, *, action: str, paths: Sequence[str] = (), at: datetime | None = None
    ) -> dict[str, Any]:
        """The claims if the run's token allows `action` on `paths` at `at` (default now)."""
        moment = at or self._clock()
        with Session(self._engine) as session:
            row = self._latest(session, run.id)
        jti = row.jti if row else ""
        try:
            if row is None:
                raise _Refusal("no delegation token was issued for this run")
            claims = self._verified(run, row, action, paths, moment)
        except _Refusal as refusal:
            self._record(run, action, jti, paths, refusal=str(refusal))
            raise DelegationRefused(run.id, jti, action, str(refusal)) from None
        self._record(run, action, jti, paths)
        return claims

    def revoke(self, jti: str, *, actor: str, reason: str) -> str:
        """Revoke a token (by jti); returns its run id. Checks refuse it from then on."""
        with Session(self._engine) as session, session.begin():
            row = session.get(DelegationTokenRow, jti, with_for_update=True)
            if row is None:
                raise IdentityError(f"no delegation token with jti {jti!r}")
            row.revoked_at, row.revoked_reason = self._clock(), reason
            event = DelegationRevoked(
                actor=actor, run_id=row.run_id, jti=jti, reason=reason, at=self._clock()
            )
            self._audit.append(event, session=session)
            return row.run_id

    def _verified(
        self, run: Run, row: DelegationTokenRow, action: str, paths: Sequence[str], at: datetime
    ) -> dict[str, Any]:
        if row.revoked_at is not None:
            when = _aware(row.revoked_at).isoformat()
            raise _Refusal(f"token {row.jti} was revoked at {when}: {row.revoked_reason}")
        logged = self.revocation(row.jti, run.id)
        if logged is not None:  # the row was cleared, the signed act stays in the log
            raise _Refusal(f"token {row.jti} was {logged}; the audit log says so")
        try:
            _, claims = open_token(row.token, self.issuer.public_keys())
        except TokenInvalid as error:
            raise _Refusal(f"token {row.jti} is not genuine: {error}") from None
        self._check_parties(run, claims)
        if claims.get("jti") != row.jti:
            raise _Refusal(f"the stored token carries jti {claims.get('jti')!r}, not {row.jti}")
        _check_time(claims, at)
        self._check_scope(run, claims, action, paths)
        return claims

    def _check_parties(self, run: Run, claims: dict[str, Any]) -> None:
        if claims.get("run_id") != run.id:
            raise _Refusal(f"the token is for run {claims.get('run_id')}, not {run.id}")
        if claims.get("iss") != self.issuer.name:
            raise _Refusal(f"the token was issued by {claims.get('iss')!r}, not this factory")
        if claims.get("aud") != self.audience:
            raise _Refusal(f"the token's audience is {claims.get('aud')!r}, not {self.audience!r}")
        if claims.get("sub") != run.sponsor:
            raise _Refusal(f"the token acts for {claims.get('sub')!r}, not the run's sponsor")
        actor = claims.get("act")
        agent_id = actor.get("sub") if isinstance(actor, dict) else None
        if agent_id != run.agent_id:
            raise _Refusal(f"the token delegates to {agent_id!r}, not the run's agent")
        try:
            self._agents.require_active(run.agent_id)
        except AgentUnavailable as error:
            raise _Refusal(str(error)) from None

    def _check_scope(
        self, run: Run, claims: dict[str, Any], action: str, paths: Sequence[str]
    ) -> None:
        try:
            scope = Scope.from_claim(claims.get("scope"))
        except ValueError as error:
            raise _Refusal(f"the token's scope is unreadable: {error}") from None
        repository = run.repository
        # a token issued before repositories had canonical ids names the checkout's folder
        legacy = Path(run.repository_path).name if run.repository_path else None
        if scope.repository != repository and scope.repository != legacy:
            raise _Refusal(f"the token is for repository {scope.repository}, not {repository}")
        if action not in scope.actions:
            raise _Refusal(f"{action} was not granted (granted: {', '.join(scope.actions)})")
        outside = scope.outside(paths)
        if outside:
            raise _Refusal(f"outside the delegated paths: {', '.join(outside)}")

    def _record(
        self, run: Run, action: str, jti: str, paths: Sequence[str], refusal: str | None = None
    ) -> None:
        """`delegation-checked`, or `delegation-refused` with the `refusal`'s reason."""
        actor, at = f"factory:{action.partition(':')[0]}", self._clock()
        event: AuditEvent = (
            DelegationRefusedEvent(actor=actor, run_id=run.id, at=at, jti=jti, action=action,
                                   paths=list(paths), reason=refusal)
            if refusal is not None
            else DelegationChecked(actor=actor, run_id=run.id, at=at, jti=jti, action=action,
                                   paths=list(paths))
        )  # fmt: skip
        self._audit.append(event)


def _parties(session: Session, run: Run) -> tuple[str, str]:
    """Who caused the run's trigger and who requested it, as intake recorded them (read in
    the authorizing transaction, then signed into the token)."""
    from codefactory.store.models import TriggerRow

    detail = session.get(TriggerDetailRow, run.trigger_id)
    trigger = session.get(TriggerRow, run.trigger_id)
    return (detail.caused_by if detail else ""), (trigger.actor if trigger else "")


class _Refusal(Exception):
    """Why a check fails; becomes DelegationRefused with the run and token named."""


def _check_time(claims: dict[str, Any], at: datetime) -> None:
    expires, not_before = claims.get("exp"), claims.get("nbf", claims.get("iat"))
    if not isinstance(expires, int) or not isinstance(not_before, int):
        raise _Refusal("the token has no integer exp and nbf/iat")
    moment = at.timestamp()
    if moment >= expires:
        raise _Refusal(f"the token expired at {_when(expires)}")
    if moment + LEEWAY_S < not_before:
        raise _Refusal(f"the token is not valid before {_when(not_before)}")


def _when(timestamp: int) -> str:
    """A NumericDate (RFC 7519 §2) for a message; a hostile one may be out of any calendar."""
    try:
        return datetime.fromtimestamp(timestamp, UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        return f"{timestamp} (seconds since 1970)"
