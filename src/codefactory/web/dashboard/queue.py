"""The queue: the runs waiting for the signed-in person, then every recent run.

A run waits for a person when its state asks for a role they hold and segregation of duties
lets them act on it: `in_review` for a `reviewer`, `in_qa` for `qa`, `in_uat` for `uat`; never
for the run's sponsor, its requester, the person who caused its trigger or its agent
(`review.segregation.check_reviewer`). States are matched by their value, so a state the
`RunState` of this build lacks simply matches no run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from codefactory.domain import Run, TriggerEvent
from codefactory.identity.directory import Person
from codefactory.review.errors import SegregationViolation
from codefactory.review.segregation import check_reviewer
from codefactory.web.dashboard.stages import STAGES, stage_of

Triggers = Callable[[str], TriggerEvent | None]


@dataclass(frozen=True, kw_only=True)
class WaitingRun:
    """A run in the viewer's queue and what it waits for (`review`, `QA sign-off`, …)."""

    run: Run
    task: str


@dataclass(frozen=True, kw_only=True)
class QueuePage:
    """What `/` shows: who is looking, their queue, the state counts, the recent runs."""

    viewer: Person | None
    waiting: tuple[WaitingRun, ...]
    counts: tuple[tuple[str, int], ...]
    """(state value, how many runs), by state value."""
    recent: tuple[Run, ...]


def segregation_refusal(person: Person, run: Run, trigger: TriggerEvent | None) -> str:
    """Why segregation of duties keeps `person` from signing off `run` (the text of the
    `SegregationViolation`), or "" when nothing does. Uses the stored rows: the review desk
    checks the signed facts again when the verdict arrives."""
    try:
        check_reviewer(
            reviewer=person.id,
            sponsor=run.sponsor,
            agent_id=run.agent_id,
            trigger_actor=trigger.actor if trigger else "",
            caused_by=trigger.caused_by if trigger else "",
            run_id=run.id,
        )
    except SegregationViolation as err:
        return str(err)
    return ""


def task_for(person: Person, run: Run, trigger: TriggerEvent | None) -> str:
    """What `run` waits for from `person` (`review`, `QA sign-off`, `UAT sign-off`), or ""
    when it waits for nothing they may do."""
    stage = stage_of(run.state.value)
    if stage is None or not person.has_role(stage.role):
        return ""
    return "" if segregation_refusal(person, run, trigger) else stage.task


def queue_page(runs: Sequence[Run], *, viewer: Person | None, triggers: Triggers) -> QueuePage:
    """The queue of `viewer` among `runs` (newest first); `triggers` looks a trigger up by
    id (asked only for runs in a waiting state)."""
    waiting: list[WaitingRun] = []
    if viewer is not None:
        for run in runs:
            if run.state.value in STAGES:
                task = task_for(viewer, run, triggers(run.trigger_id))
                if task:
                    waiting.append(WaitingRun(run=run, task=task))
    tally = Counter(run.state.value for run in runs)
    return QueuePage(
        viewer=viewer,
        waiting=tuple(waiting),
        counts=tuple(sorted(tally.items())),
        recent=tuple(runs),
    )
