"""Grants: the short-lived credentials that tie every gateway call to a run.

A credential is `cfk-` followed by 32 random bytes, URL-safe base64 (`secrets`); the table
keeps only its SHA-256. It is refused once revoked or once the grant's `budget.wall_s` has
passed. Spend is kept per run id, across that run's grants, and outlives revocation so the
factory can read it after the run. Every method is thread-safe.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace

from codefactory.engines.gateway.budget import add_usage, price_of, spent_measure
from codefactory.engines.gateway.usage import Usage
from codefactory.engines.session import Budget, Spend

CREDENTIAL_PREFIX = "cfk-"
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True, kw_only=True)
class Grant:
    """Who a credential speaks for, and the budget it carries."""

    run_id: str
    agent_id: str
    sponsor: str
    engine: str
    model: str
    budget: Budget
    granted_at: float
    """`time.monotonic()` at the grant: wall time counts from here."""
    revoked: bool = False


@dataclass(frozen=True, kw_only=True)
class Authentication:
    """The outcome of checking a call's credentials: the grant, or why there is none. A
    revoked or expired grant is returned too (with its reason) so the refusal can be
    attributed to its run."""

    grant: Grant | None
    refusal: str = ""


def _digest(credential: str) -> str:
    return hashlib.sha256(credential.encode()).hexdigest()


class GrantTable:
    """Credentials, their grants, and each run's spend."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._grants: dict[str, Grant] = {}
        self._spend: dict[str, Spend] = {}

    def grant(
        self, run_id: str, agent_id: str, sponsor: str, engine: str, model: str, budget: Budget
    ) -> str:
        """A fresh credential for `run_id`; raises ValueError for a run id that cannot name a
        cassette file (letters, digits, `.`, `_`, `-`; at most 128)."""
        if not _RUN_ID.match(run_id):
            raise ValueError(f"run id {run_id!r} must match {_RUN_ID.pattern}")
        credential = CREDENTIAL_PREFIX + secrets.token_urlsafe(32)
        entry = Grant(
            run_id=run_id,
            agent_id=agent_id,
            sponsor=sponsor,
            engine=engine,
            model=model,
            budget=budget,
            granted_at=time.monotonic(),
        )
        with self._lock:
            self._grants[_digest(credential)] = entry
            self._spend.setdefault(run_id, Spend())
        return credential

    def revoke(self, credential: str) -> bool:
        """Refuse `credential` from now on; False when it was unknown or already revoked."""
        key = _digest(credential)
        with self._lock:
            entry = self._grants.get(key)
            if entry is None or entry.revoked:
                return False
            self._grants[key] = replace(entry, revoked=True)
            return True

    def authenticate(self, candidates: Iterable[str]) -> Authentication:
        """The grant of the first known credential among `candidates` (the values of
        `Authorization: Bearer`, `x-api-key`, `api-key`), with a refusal reason when it is
        revoked or expired, or when none is known."""
        offered = [c for c in candidates if c]
        if not offered:
            return Authentication(grant=None, refusal="no credential: send the run's key")
        with self._lock:
            entry = next(
                (g for c in offered if (g := self._grants.get(_digest(c))) is not None), None
            )
        if entry is None:
            return Authentication(grant=None, refusal="unknown credential")
        if entry.revoked:
            return Authentication(grant=entry, refusal="credential revoked")
        wall_s = entry.budget.wall_s
        if wall_s is not None and time.monotonic() - entry.granted_at >= wall_s:
            return Authentication(
                grant=entry, refusal=f"credential expired: run wall time {wall_s:g}s spent"
            )
        return Authentication(grant=entry)

    def reserve(self, entry: Grant, *, count_request: bool) -> str | None:
        """Check the run's budget before a call: the spent measure (`"requests 50/50"`), or
        None and, when `count_request`, the request counted."""
        with self._lock:
            spend = self._spend.get(entry.run_id, Spend())
            measure = spent_measure(entry.budget, spend)
            if measure is None and count_request:
                self._spend[entry.run_id] = replace(spend, requests=spend.requests + 1)
            return measure

    def account(self, entry: Grant, model: str, usage: Usage, *, estimated: bool) -> float:
        """Add one response's tokens and their cost (US dollars, returned) to its run."""
        cost = price_of(entry.budget, model, usage)
        with self._lock:
            spend = self._spend.get(entry.run_id, Spend())
            self._spend[entry.run_id] = add_usage(spend, usage, cost, estimated=estimated)
        return cost

    def spend(self, run_id: str) -> Spend:
        """What `run_id` has used so far; nothing for a run never granted."""
        with self._lock:
            return self._spend.get(run_id, Spend())
