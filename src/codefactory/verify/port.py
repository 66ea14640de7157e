"""The feedback-loop port: a check judges the workspace after a change.

A check only reports what it sees. Comparing with the base commit, thresholds, waivers,
order and parallelism belong to the gate, which reads two optional facts from a check:
`baseline` (what the base-commit run of this check is) and `cost` (cheap checks run first).
A check whose verdict depends on what the ticket asked for (`MandatedCheck`) is bound to the
ticket's `Mandate` by the gate before it runs. A check that serves some ecosystems only
(`EcosystemCheck`: ruff, bandit and pytest Python; ESLint and the JavaScript tests npm) runs
only on a repository that has one of them; `port` names what a repository config may skip
(`lint` covers ruff and ESLint).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from codefactory.domain import Change, ChangeKind, CheckResult, TriggerEvent
from codefactory.projects.model import Ecosystem, Project
from codefactory.sandbox.port import Workspace
from codefactory.verify.waivers import WaiverUse


class Baseline(enum.StrEnum):
    """How the gate finds what a check reported at the base commit."""

    FILES = "files"
    """Run the check on the changed files' base versions; cacheable per file and commit."""
    DIFF = "diff"
    """Run the check on the base with the change reversed (it reads the diff); never cached."""
    REPOSITORY = "repository"
    """Run the check on the whole base tree; cacheable per commit."""
    RECORDED = "recorded"
    """Only what the check recorded at the base commit (`prepare`); the tests."""
    NONE = "none"
    """The findings describe the change itself (its scope); everything is new."""


class Cost(enum.IntEnum):
    """When the gate runs a check: every cheap one in parallel, then the expensive ones."""

    CHEAP = 1
    EXPENSIVE = 2


class Check(Protocol):
    """One gate: lint, tests, SCA, ...; runs inside the sandbox with no network."""

    name: str

    def run(self, workspace: Workspace, change: Change) -> CheckResult:
        """Judge the change; a check that could not run returns a failed result."""
        ...


@runtime_checkable
class ComparedCheck(Check, Protocol):
    """A check that tells the gate how to find its base-commit findings and what it costs."""

    baseline: Baseline
    cost: Cost

    def config_digest(self) -> str:
        """What besides the commit decides its findings (tool versions, options), for caches."""
        ...


@runtime_checkable
class RecordingCheck(ComparedCheck, Protocol):
    """A check whose baseline must be recorded on an installed base workspace (the tests)."""

    def recorded(self, commit: str) -> bool:
        """Whether the baseline of `commit` is already recorded."""
        ...

    def record_base(self, workspace: Workspace) -> None:
        """Record the baseline (and whatever else it needs) of the workspace's base commit."""
        ...

    def record_failed(self, commit: str, reason: str) -> None:
        """No baseline of `commit` can be recorded: say why wherever it is missed."""
        ...


@runtime_checkable
class EcosystemCheck(Check, Protocol):
    """A check that declares the ecosystems it serves (None: every repository) and its port."""

    ecosystems: frozenset[Ecosystem] | None
    port: str
    """`lint`, `tests`, `sast`, `sca`: the kind of judgement, shared across ecosystems."""


@runtime_checkable
class ProjectCheck(Check, Protocol):
    """A check that reads the workspace's project (its manager, test script, ESLint config):
    the gate binds the project it detected once, instead of each check detecting it again."""

    def for_project(self, project: Project) -> Check:
        """The same check, judging a workspace whose project is `project`."""
        ...


@runtime_checkable
class SkippableCheck(Check, Protocol):
    """A check that can say it was not run, with its own kind of evidence."""

    def skipped(self, reason: str) -> CheckResult:
        """A failed result without findings: the check did not run, for `reason`."""
        ...


@dataclass(frozen=True, kw_only=True)
class Mandate:
    """What the ticket asked for, from the facts policy also sees: its kind and its labels.

    Never its title or body: those are untrusted text that anyone (or an engine's own
    output, echoed into a ticket) can write. Labels are normalised to lower case.
    """

    kind: ChangeKind | None = None
    labels: frozenset[str] = frozenset()

    @classmethod
    def of(cls, ticket: TriggerEvent | None) -> Mandate:
        """The mandate of `ticket`; no ticket (`codefactory verify`): nothing was asked."""
        if ticket is None:
            return cls()
        labels = frozenset(label.strip().lower() for label in ticket.labels)
        return cls(kind=ticket.kind, labels=labels)


@runtime_checkable
class MandatedCheck(Check, Protocol):
    """A check whose verdict depends on what the ticket asked for (the integrity check)."""

    def under(self, mandate: Mandate) -> Check:
        """The same check, judging a change made for a ticket with `mandate`."""
        ...


class ChangeGate(Protocol):
    """The whole gate as the run loop sees it: judge a change, then say which findings a
    waiver covered. The adapter is `codefactory.verify.gate.Gate`."""

    def run(
        self,
        workspace: Workspace,
        change: Change,
        *,
        repo: Path | None = None,
        ticket: TriggerEvent | None = None,
    ) -> list[CheckResult]:
        """One result per check, in the gate's order, for `change` made in `workspace`,
        compared with the base commit of `repo`; `ticket` is the trigger the change was made
        for (only its kind and labels are read). A check that could not run is a failed
        result, never an exception."""
        ...

    def waivers_applied(self, results: Sequence[CheckResult]) -> list[WaiverUse]:
        """Each waived finding of `results` with its waiver: one audit event each."""
        ...
