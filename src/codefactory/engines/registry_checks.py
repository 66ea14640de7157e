"""The registry's rules beyond its schema: independent validation, and the controls an entry
must set before it can be cleared.

Each rule gives a `"FIELD: message"` string. `validation_gaps` are what make an entry
`unvalidated`; `entry_problems` what make it `invalid`; `registry_problems` collects both for
every entry for `codefactory engines validate`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from codefactory.engines.registry_model import AGENT_TOOLS, EngineEntry, Lifecycle


def validation_gaps(entry: EngineEntry) -> list[str]:
    """What an independent validation of `entry` lacks (SR 11-7's "effective challenge"): a
    validator who is not the owner, a date, and for a language-model engine the run ids of
    its evidence."""
    gaps = []
    if not entry.validator.strip():
        gaps.append("validator: missing")
    elif entry.validator.strip().casefold() == entry.owner.strip().casefold():
        gaps.append(f"validator: is the owner ({entry.owner}); validation must be independent")
    if entry.validated_on is None:
        gaps.append("validated_on: missing")
    if not entry.is_recipe and not entry.validation_evidence:
        gaps.append("validation_evidence: a language-model engine needs the run ids")
    return gaps


def entry_problems(entry: EngineEntry) -> list[str]:
    """Rules `entry` breaks whatever the day: dates out of order, contradictory uses, and
    controls a language-model engine must set (every budget measure, its model's price, a
    known tool allow-list for the in-harness agent)."""
    problems = []
    if entry.validated_on and entry.validated_on > entry.next_review:
        problems.append(
            f"next_review: {entry.next_review} is before validated_on {entry.validated_on}"
        )
    for kind in entry.change_kinds:
        if kind in entry.prohibited_change_kinds:
            problems.append(f"prohibited_change_kinds: {kind} is also approved")
    problems += _recipe_problems(entry) if entry.is_recipe else _model_problems(entry)
    return problems


def registry_problems(entries: Iterable[EngineEntry], *, today: date) -> list[str]:
    """Every rule broken in the registry, as `engine NAME: FIELD: message`. An active entry
    must be validated (and not on a date after `today`); suspended and retired entries may
    lack a validation."""
    found = []
    for entry in entries:
        broken = entry_problems(entry)
        if entry.status is Lifecycle.ACTIVE:
            broken = validation_gaps(entry) + broken
            if entry.validated_on and entry.validated_on > today:
                broken.append(f"validated_on: {entry.validated_on} is after today ({today})")
        found += [f"engine {entry.name}: {problem}" for problem in broken]
    return found


def _recipe_problems(entry: EngineEntry) -> list[str]:
    problems = []
    if entry.egress_hosts:
        problems.append("egress_hosts: a recipe reaches no host")
    if entry.prices:
        problems.append("prices: a recipe reaches no model")
    return problems


def _model_problems(entry: EngineEntry) -> list[str]:
    problems = []
    if missing := entry.limits.missing():
        problems.append(
            f"budget: {', '.join(missing)} not set (every language-model engine needs each cap)"
        )
    if entry.model not in entry.prices:
        problems.append(f"prices: no price for model {entry.model}")
    if entry.name.startswith("agent:"):
        if not entry.tools:
            problems.append("tools: the in-harness agent needs an allow-list")
        if unknown := sorted(set(entry.tools) - set(AGENT_TOOLS)):
            problems.append(
                f"tools: unknown {', '.join(unknown)} (known: {', '.join(AGENT_TOOLS)})"
            )
    return problems
