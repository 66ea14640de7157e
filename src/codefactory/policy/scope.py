"""The two checks' requests: the run context policy reads, and the scope of a finished change.

At intake the loop asks whether the trigger may start the kind of run (`run_context`). At
packaging, before anything reaches the forge, `check_change_scope` asks again for the diff
itself: one request per touched path for the pull request (`open_pr`, else `open_draft_pr`)
and one per action each path implies (dependency manifests, CI, infrastructure), all in one
batch. Any denial refuses the whole change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from codefactory.domain import Change, Decision, Run, TriggerEvent
from codefactory.policy.errors import ScopeExceeded
from codefactory.policy.paths import implied_actions, path_entities, path_ref
from codefactory.policy.port import AuthorizationRequest, EntityRef, PolicyEngine

DELIVERIES = ("open_pr", "open_draft_pr")
"""How a change may be delivered, most trusted first."""


def run_context(
    run: Run, trigger: TriggerEvent, *, agent: str, engine: str, now: datetime
) -> dict[str, Any]:
    """The Cedar context of a run (see `schema.cedarschema`): who, what, when, with what."""
    return {
        "sponsor": run.sponsor,
        "labels": list(trigger.labels),
        "source": trigger.source,
        "agent": agent,
        "kind": run.kind.value,
        "autonomous": trigger.autonomous,
        "status": trigger.attributes.get("status", ""),
        "event": trigger.event,
        "engine": engine,
        "hour": now.hour,
        "weekday": now.strftime("%a").lower(),
    }


def principal_of(trigger: TriggerEvent) -> EntityRef:
    return EntityRef(type="TriggerSource", id=trigger.source)


def repository_of(run: Run) -> EntityRef:
    """The run's `Repository` entity uid: its canonical id (docs/repositories.md)."""
    return EntityRef(type="Repository", id=run.repository)


def change_context(change: Change, *, risk: str) -> dict[str, Any]:
    """What packaging adds to the context: the diff's size and its assessed risk."""
    return {
        "risk": risk,
        "diff_files": len(change.files),
        "diff_bytes": sum(len(f.content or b"") for f in change.files),
    }


@dataclass(frozen=True, kw_only=True)
class PathVerdict:
    """Policy's answer for one action on one touched path."""

    path: str
    action: str
    decision: Decision


@dataclass(frozen=True, kw_only=True)
class ScopeDecision:
    """The packaging check: allowed, the delivery granted (or asked), every path verdict."""

    allowed: bool
    delivery: str
    verdicts: tuple[PathVerdict, ...]

    @property
    def denied(self) -> tuple[PathVerdict, ...]:
        return tuple(v for v in self.verdicts if not v.decision.allowed)

    @property
    def decision(self) -> Decision:
        """One decision for the record: the deciding policies and reasons, paths named."""
        chosen = self.denied if not self.allowed else self.verdicts
        ids = dict.fromkeys(pid for v in chosen for pid in v.decision.policy_ids)
        by_reason: dict[str, list[str]] = {}
        for verdict in chosen:
            for reason in _reasons(verdict):
                by_reason.setdefault(reason, []).append(verdict.path)
        reasons = tuple(f"{reason} ({_paths(paths)})" for reason, paths in by_reason.items())
        errors = tuple(dict.fromkeys(e for v in chosen for e in v.decision.errors))
        return Decision(allowed=self.allowed, policy_ids=tuple(ids), reasons=reasons, errors=errors)

    def error(self) -> ScopeExceeded | None:
        """The first denial as an exception, for callers that raise; None when allowed."""
        if self.allowed or not self.denied:
            return None
        first = self.denied[0]
        ids = first.decision.policy_ids
        return ScopeExceeded(first.path, first.action, ids, self.decision.summary)

    def audit_data(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "delivery": self.delivery,
            "requests": len(self.verdicts),
            "denied": [
                {"path": v.path, "action": v.action, "policy_ids": list(v.decision.policy_ids)}
                for v in self.denied
            ],
        }


def check_change_scope(
    policy: PolicyEngine,
    *,
    principal: EntityRef,
    repository: EntityRef,
    change: Change,
    context: Mapping[str, Any],
) -> ScopeDecision:
    """Ask for every touched path; the first delivery all paths allow wins, else refused
    with the delivery that came closest (fewest denials)."""
    paths = change.paths
    entities = path_entities(repository.id, paths)
    attempts: list[ScopeDecision] = []
    for delivery in DELIVERIES:
        asked = [(path, action) for path in paths for action in (delivery, *implied_actions(path))]
        requests = [
            AuthorizationRequest(
                principal=principal,
                action=action,
                resource=path_ref(path),
                context={**context, "delivery": delivery},
            )
            for path, action in asked
        ]
        decisions = policy.authorize_batch(requests, entities)
        verdicts = tuple(
            PathVerdict(path=path, action=action, decision=decision)
            for (path, action), decision in zip(asked, decisions, strict=True)
        )
        attempt = ScopeDecision(
            allowed=bool(verdicts) and all(v.decision.allowed for v in verdicts),
            delivery=delivery,
            verdicts=verdicts,
        )
        if attempt.allowed:
            return attempt
        attempts.append(attempt)
    return min(attempts, key=lambda attempt: len(attempt.denied))


def _reasons(verdict: PathVerdict) -> list[str]:
    decision = verdict.decision
    if decision.reasons:
        return list(decision.reasons)
    if decision.errors:
        return ["policy evaluation error: " + "; ".join(decision.errors)]
    return [f"no policy permits {verdict.action} (default deny)"]


def _paths(paths: Sequence[str]) -> str:
    shown = ", ".join(paths[:3])
    return shown + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
