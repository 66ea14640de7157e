"""`CliEngine`: an external agent CLI as an engine, run inside the run's sandbox workspace.

One round: build (or find) the CLI's image, tell it the task, run it in the ENGINE phase with
the model gateway its only reachable host, store its stream and log as evidence, then judge:

    wall clock hit               → CliTimedOut        (`wall-clock`)
    another sandbox limit hit    → CliLimitHit        (`limit-<name>`)
    the gateway answered 429     → ModelBudgetSpent   (`budget-spent`)
    non-zero exit                → CliExited          (`exit-status`)
    no final result on stream    → CliNoResult        (`no-result`, or `garbage`: no event)
    else                         → Proposal, rationale = the CLI's final message

The stream is the CLI's own account (self-reported); the gateway's records are authoritative.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from codefactory.domain import CheckResult, Proposal, Task
from codefactory.engines.cli.adapter import CliAdapter, StreamReading
from codefactory.engines.cli.errors import (
    CliEngineError,
    CliExited,
    CliLimitHit,
    CliNoResult,
    CliTimedOut,
    ModelBudgetSpent,
)
from codefactory.engines.cli.image import EngineImage, build_image
from codefactory.engines.cli.prompt import cli_prompt
from codefactory.engines.cli.runner import CliRun, run_cli
from codefactory.engines.session import EngineSession
from codefactory.sandbox.limits import Limits
from codefactory.sandbox.port import Workspace

DEFAULT_WALL_S = 900.0


class NoModelAccess(CliEngineError):
    """The run gave the engine no way to its model (no session, or no gateway)."""

    reason = "no-model"


class CliEngine:
    """An agent CLI behind the `Engine` port; `name` is `cli:<adapter name>`."""

    def __init__(
        self, adapter: CliAdapter, cache_dir: Path, *, limits: Limits | None = None
    ) -> None:
        """`cache_dir` holds the engine images (`<cache_dir>/engine-images/`); `limits`
        the sandbox limits of the CLI's command (the wall clock comes from the budget)."""
        self.adapter = adapter
        self.cache_dir = cache_dir
        self.limits = limits
        self.name = f"cli:{adapter.name}"
        self.version = adapter.recipe.version

    def image(self) -> EngineImage:
        """The CLI's image, built on first use (`ImageBuildFailed` says why it could not)."""
        return build_image(self.adapter.recipe, self.cache_dir)

    def propose(
        self,
        task: Task,
        workspace: Workspace,
        feedback: Sequence[CheckResult],
        session: EngineSession | None = None,
    ) -> Proposal:
        """Run the CLI once over the workspace; its edits stay there. Raises a
        `CliEngineError` subclass naming the reason it failed (module docstring)."""
        if session is None or session.model is None:
            raise NoModelAccess(self.name, "the run gave this engine no model gateway access")
        model = session.model
        image = self.image()
        prompt = cli_prompt(task, workspace, feedback)
        launch = self.adapter.launch(
            session.mask(prompt) if session.mask else prompt,
            model,
            session.allowed_tools,
            context_mcp=session.context_tools,
        )
        wall_s = session.budget.wall_s or DEFAULT_WALL_S
        run = run_cli(workspace, image, launch, model, wall_s=wall_s, limits=self.limits)
        evidence = self._keep(session, run)
        reading = self.adapter.read(run.stream)
        message = self._judge(run, reading, wall_s)
        return Proposal(
            engine=self.name,
            engine_version=self.version,
            rationale=message,
            details={
                "image": image.root.name,
                "events": reading.events,
                "garbage_lines": len(reading.garbage),
                "duration_s": round(run.result.duration_s, 3),
                "evidence": evidence,
                **dict(reading.details),
            },
        )

    def _keep(self, session: EngineSession, run: CliRun) -> list[str]:
        if session.evidence is None:
            return []
        prefix = f"round-{session.round}-" if session.round > 1 else ""
        stream = session.evidence(prefix + self.adapter.stream_name, run.stream)
        log = session.evidence(f"{prefix}{self.adapter.name}.stderr.log", run.log)
        return [str(stream), str(log)]

    def _judge(self, run: CliRun, reading: StreamReading, wall_s: float) -> str:
        result = run.result
        if result.limit_hit == "wall-clock":
            raise CliTimedOut(self.name, f"still running after {wall_s:g} s; killed")
        if result.limit_hit:
            raise CliLimitHit(self.name, _tail(run.log), limit=result.limit_hit)
        if reading.http_status == 429:
            raise ModelBudgetSpent(self.name, reading.error[:500])
        if result.exit_code != 0:
            detail = reading.error or _tail(run.log) or "no message"
            raise CliExited(self.name, detail[:1000], exit_code=result.exit_code)
        if reading.final_message is None:
            garbage_only = reading.events == 0
            what = (
                f"{len(reading.garbage)} lines, none an event"
                if garbage_only
                else f"{reading.events} events, none a final result"
            )
            detail = f"{what}{': ' + reading.error if reading.error else ''}"
            raise CliNoResult(self.name, detail, garbage_only=garbage_only)
        return reading.final_message or f"{self.name} ended without a summary"


def _tail(log: bytes, chars: int = 800) -> str:
    return log.decode("utf-8", "replace").strip()[-chars:]


def details_of(error: CliEngineError) -> dict[str, Any]:
    """The facts of a failure for the run's record: engine, reason and detail."""
    return {"engine": error.engine, "reason": error.reason, "detail": error.detail}
