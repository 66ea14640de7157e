"""Agent-CLI engine errors, each with the named `reason` the run ends `failed` with.

EngineError
 └── CliEngineError         base: `engine` (registry name) and `reason`
      ├── ImageBuildFailed  reason `image-build`: the engine image could not be built (the
      │                     registry unreachable, no such version, a missing native package)
      ├── CliExited         reason `exit-status`: the CLI ended non-zero
      ├── CliTimedOut       reason `wall-clock`: the CLI ran past the budget's wall time
      ├── CliLimitHit       reason `limit-<name>`: another sandbox limit killed it (memory, ...)
      ├── CliNoResult       reason `no-result` (a stream with no final result event) or
      │                     `garbage` (no event at all on its stream)
      └── ModelBudgetSpent  reason `budget-spent`: the gateway refused a model call (HTTP 429)
"""

from __future__ import annotations

from codefactory.engines.errors import EngineError


class CliEngineError(EngineError):
    """An agent CLI failed; `reason` names how, `engine` which one."""

    reason = "cli-failed"

    def __init__(self, engine: str, detail: str) -> None:
        super().__init__(f"{engine}: {self.reason}: {detail}")
        self.engine = engine
        self.detail = detail


class ImageBuildFailed(CliEngineError):
    """The engine's image could not be built on the host; nothing ran."""

    reason = "image-build"


class CliExited(CliEngineError):
    """The CLI exited with a non-zero status."""

    reason = "exit-status"

    def __init__(self, engine: str, detail: str, *, exit_code: int) -> None:
        super().__init__(engine, f"exit status {exit_code}: {detail}")
        self.exit_code = exit_code


class CliTimedOut(CliEngineError):
    """The CLI ran past its wall clock and was killed with everything it started."""

    reason = "wall-clock"


class CliLimitHit(CliEngineError):
    """A sandbox limit other than the wall clock killed the CLI."""

    def __init__(self, engine: str, detail: str, *, limit: str) -> None:
        self.reason = f"limit-{limit}"
        super().__init__(engine, detail)
        self.limit = limit


class CliNoResult(CliEngineError):
    """The CLI's event stream ended without a final result (or held no event at all)."""

    reason = "no-result"

    def __init__(self, engine: str, detail: str, *, garbage_only: bool = False) -> None:
        if garbage_only:
            self.reason = "garbage"
        super().__init__(engine, detail)


class ModelBudgetSpent(CliEngineError):
    """The model gateway answered 429: the run's budget is spent (or the provider's limit)."""

    reason = "budget-spent"
