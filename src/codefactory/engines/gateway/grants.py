"""Grants: the short-lived credentials that tie every gateway call to a run.

A credential is `cfk-` followed by 32 random bytes, URL-safe base64 (`secrets`); the table
keeps only its SHA-256. It is refused once revoked or once the grant's `budget.wall_s` has
passed. Spend is kept per run id, across that run's grants, and outlives revocation so the
factory can read it after the run. A call is admitted (`admit`) only while its run has fewer
than `max_concurrent` calls in flight and every measure has room counting the worst cases
that calls in flight hold; its own worst case is held until `settle` or `release`. Every
method is thread-safe.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

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
    extra_models: tuple[str, ...] = ()
    """Models besides `model` the run may call (an engine's side requests with a smaller
    model); none by default."""

    @property
    def models(self) -> tuple[str, ...]:
        """Every model the run may call, `model` first."""
        return (self.model, *(m for m in self.extra_models if m != self.model))

    def allows(self, model: str) -> bool:
        """Whether a call may name `model` (exactly; see `screening`)."""
        return model in self.models


@dataclass(kw_only=True)
class Reservation:
    """A call admitted against its run's budget: the worst case it may spend, held until its
    answer is accounted (`GrantTable.settle`) or it ends without one (`release`)."""

    run_id: str
    input_tokens: int
    output_tokens: int
    cost_usd: float
    settled: bool = False


@dataclass(frozen=True, kw_only=True)
class Admission:
    """A call's admission: its reservation, or why there is none (`busy`: too many calls of
    the run in flight, which waiting cures; otherwise the budget is spent)."""

    reservation: Reservation | None
    refusal: str = ""
    busy: bool = False


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
        self._held: dict[str, Spend] = {}  # run id → the sum of its calls' reservations
        self._in_flight: dict[str, int] = {}  # run id → calls admitted, not yet settled

    def grant(
        self,
        run_id: str,
        agent_id: str,
        sponsor: str,
        engine: str,
        model: str,
        budget: Budget,
        *,
        extra_models: Iterable[str] = (),
        spent: Spend | None = None,
    ) -> str:
        """A fresh credential for `run_id`, for calls naming `model` (or one of
        `extra_models`); raises ValueError for a run id that cannot name a cassette file
        (letters, digits, `.`, `_`, `-`; at most 128). `spent`: what the run already used
        before this process first granted it a credential (its audited model calls, when
        another worker drove it earlier), counted against the budget."""
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
            extra_models=tuple(extra_models),
        )
        with self._lock:
            self._grants[_digest(credential)] = entry
            self._spend.setdefault(run_id, spent or Spend())
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

    def admit(
        self,
        entry: Grant,
        model: str,
        *,
        input_tokens: int,
        output_tokens: int | None,
        max_concurrent: int,
    ) -> Admission:
        """Admit one model call of `entry`'s run: refused while `max_concurrent` of its calls
        are in flight (`busy`) or while a measure, counting what calls in flight hold, is
        used up; otherwise its request is counted and its worst case held: `input_tokens`
        (from the request's size), `output_tokens` (the request's own cap; when it names
        none, what is left of the output cap) and their cost; a measure without a cap holds
        nothing, and an unknown cost holds what is left of the cost cap."""
        budget = entry.budget
        with self._lock:
            running = self._in_flight.get(entry.run_id, 0)
            if running >= max_concurrent:
                return Admission(
                    reservation=None,
                    refusal=f"{running} calls of this run in flight (at most {max_concurrent})",
                    busy=True,
                )
            spend = self._spend.get(entry.run_id, Spend())
            held = self._held.get(entry.run_id, Spend())
            committed = _plus(spend, held)
            measure = spent_measure(budget, committed)
            if measure is not None:
                suffix = f" (with {running} call(s) in flight)" if running else ""
                return Admission(reservation=None, refusal=measure + suffix, busy=running > 0)
            room_in = _room(budget.input_tokens, committed.input_tokens)
            room_out = _room(budget.output_tokens, committed.output_tokens)
            worst_in = input_tokens if room_in is None else min(input_tokens, room_in)
            if output_tokens is None:
                worst_out = room_out or 0
            else:
                worst_out = output_tokens if room_out is None else min(output_tokens, room_out)
            room_cost = _room(budget.cost_usd, committed.cost_usd)
            price = budget.prices.get(model)
            if price is not None and (output_tokens is not None or room_out is not None):
                cost = price.cost(worst_in, worst_out)
                worst_cost = cost if room_cost is None else min(cost, room_cost)
            else:
                worst_cost = room_cost or 0.0
            reservation = Reservation(
                run_id=entry.run_id,
                input_tokens=worst_in,
                output_tokens=worst_out,
                cost_usd=worst_cost,
            )
            self._spend[entry.run_id] = replace(spend, requests=spend.requests + 1)
            self._held[entry.run_id] = _plus(held, _as_spend(reservation))
            self._in_flight[entry.run_id] = running + 1
            return Admission(reservation=reservation)

    def recount(self, entry: Grant, reservation: Reservation) -> str | None:
        """Before a retry of an admitted call: the spent measure (counting what other calls
        hold), or None and the retry counted as a request."""
        with self._lock:
            spend = self._spend.get(entry.run_id, Spend())
            held = self._held.get(entry.run_id, Spend())
            others = _minus(held, _as_spend(reservation)) if not reservation.settled else held
            measure = spent_measure(entry.budget, _plus(spend, others))
            if measure is None:
                self._spend[entry.run_id] = replace(spend, requests=spend.requests + 1)
            return measure

    def release(self, reservation: Reservation) -> None:
        """End an admitted call without accounting anything (idempotent)."""
        with self._lock:
            self._release(reservation)

    def settle(
        self, entry: Grant, reservation: Reservation, model: str, usage: Usage, *, estimated: bool
    ) -> float:
        """End an admitted call: its reservation released, `usage` and its cost (returned)
        added to the run. A second settle of the same call only adds `usage`."""
        cost = price_of(entry.budget, model, usage)
        with self._lock:
            self._release(reservation)
            spend = self._spend.get(entry.run_id, Spend())
            self._spend[entry.run_id] = add_usage(spend, usage, cost, estimated=estimated)
        return cost

    def _release(self, reservation: Reservation) -> None:
        if reservation.settled:
            return
        reservation.settled = True
        run_id = reservation.run_id
        held = _minus(self._held.get(run_id, Spend()), _as_spend(reservation))
        self._held[run_id] = held
        self._in_flight[run_id] = max(0, self._in_flight.get(run_id, 0) - 1)

    def in_flight(self, run_id: str) -> int:
        """Calls of `run_id` admitted and not yet settled."""
        with self._lock:
            return self._in_flight.get(run_id, 0)

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


def _room(cap: float | None, used: float) -> Any:
    return None if cap is None else max(cap - used, 0)


def _as_spend(reservation: Reservation) -> Spend:
    return Spend(
        input_tokens=reservation.input_tokens,
        output_tokens=reservation.output_tokens,
        cost_usd=reservation.cost_usd,
    )


def _plus(a: Spend, b: Spend) -> Spend:
    return replace(
        a,
        input_tokens=a.input_tokens + b.input_tokens,
        output_tokens=a.output_tokens + b.output_tokens,
        cost_usd=a.cost_usd + b.cost_usd,
    )


def _minus(a: Spend, b: Spend) -> Spend:
    return replace(
        a,
        input_tokens=max(0, a.input_tokens - b.input_tokens),
        output_tokens=max(0, a.output_tokens - b.output_tokens),
        cost_usd=max(0.0, a.cost_usd - b.cost_usd),
    )
