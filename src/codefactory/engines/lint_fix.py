"""The lint-fix recipe: apply ruff's safe fixes inside the sandbox and say what they fixed.

ruff runs with the repository's own configuration, with `--no-cache` so it leaves no
`.ruff_cache` in the change. What was fixed is the difference between the findings before
and after, counted per rule, so the rationale never claims a fix ruff did not make.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence

from codefactory.domain import CheckResult, Proposal, Task
from codefactory.engines.errors import ChecksStillFail, EngineCrashed, NothingToDo
from codefactory.engines.session import EngineSession
from codefactory.sandbox.layout import RUFF
from codefactory.sandbox.port import Phase, Workspace

RUFF_CHECK = (RUFF, "check", "--no-cache", "--exit-zero", "--output-format", "json")


class LintFixEngine:
    """A recipe engine: ruff's automatic fixes, nothing else."""

    name = "recipe:lint-fix"
    version = "1"

    def propose(
        self,
        task: Task,
        workspace: Workspace,
        feedback: Sequence[CheckResult],
        session: EngineSession | None = None,
    ) -> Proposal:
        """Run `ruff check --fix` over the workspace and report the fixes per rule."""
        before = _findings(workspace, ())
        after = _findings(workspace, ("--fix",))  # with --fix, ruff reports what remains
        fixed = before - after
        if not fixed:
            if feedback:
                summaries = [
                    f"{r.check}: {r.summary or 'failed'}" for r in feedback if not r.passed
                ]
                raise ChecksStillFail(self.name, summaries, what="fix")
            raise NothingToDo(
                f"ruff can fix none of the {before.total()} findings automatically"
                if before
                else "ruff reports no findings"
            )
        counts = ", ".join(f"{rule} ×{count}" for rule, count in sorted(fixed.items()))
        return Proposal(
            engine=self.name,
            engine_version=self.version,
            rationale=(
                f"Applied ruff's safe automatic fixes: {fixed.total()} findings fixed "
                f"({counts}); {after.total()} findings remain for a human."
            ),
            details={"fixed": dict(sorted(fixed.items())), "remaining": after.total()},
        )


def _findings(workspace: Workspace, extra: Sequence[str]) -> Counter[str]:
    """ruff's findings over the workspace, counted per rule code."""
    result = workspace.exec([*RUFF_CHECK, *extra, "."], phase=Phase.ENGINE)
    if not result.ok:
        raise EngineCrashed(
            f"ruff failed (exit {result.exit_code}): {result.stderr.strip() or result.stdout}"
        )
    try:
        diagnostics = json.loads(result.stdout or "[]")
    except json.JSONDecodeError as exc:
        raise EngineCrashed(f"ruff printed no JSON: {exc}; stderr: {result.stderr}") from exc
    # a syntax error has no rule code
    return Counter(str(d.get("code") or "syntax-error") for d in diagnostics)
