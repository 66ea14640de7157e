"""The lint-fix recipe: apply ruff's safe fixes inside the sandbox and say what they fixed.

ruff runs with the repository's own rule selection, with `--no-cache` so it leaves no
`.ruff_cache` in the change. What was fixed is the difference between the findings before
and after, counted per rule, so the rationale never claims a fix ruff did not make. The
count before is read-only (`--no-fix`): a repository's `fix = true` must not fix the tree
while it is being counted and make the recipe believe there was nothing to do (issue 10).

No findings at all is `NothingToDo` (the run ends `no_change`: the finding is gone);
findings ruff cannot fix automatically are a failure, since the ticket still needs a change.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence

from codefactory.domain import CheckResult, Proposal, Task
from codefactory.engines.errors import ChecksStillFail, EngineCrashed, EngineError, NothingToDo
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
        before = _findings(workspace, ("--no-fix",))
        after = _findings(workspace, ("--fix",))  # with --fix, ruff reports what remains
        fixed = before - after
        if not fixed:
            if feedback:
                summaries = [
                    f"{r.check}: {r.summary or 'failed'}" for r in feedback if not r.passed
                ]
                raise ChecksStillFail(self.name, summaries, what="fix")
            if before:
                rules = ", ".join(sorted(before))
                raise EngineError(
                    f"ruff can fix none of the {before.total()} findings automatically "
                    f"({rules}): a human or a language-model engine must fix them"
                )
            raise NothingToDo("ruff reports no findings: the lint finding is already gone")
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
