"""The lint-fix recipe says `NothingToDo` only when the finding is gone (issue 10, item 9),
and a repository's `fix = true` cannot make it believe so (item 7)."""

from __future__ import annotations

import pytest

from codefactory.engines import EngineError, NothingToDo
from codefactory.engines.lint_fix import LintFixEngine
from tests.integration.test_recipes import LINT, WorkspaceFactory, _changed, new_workspace

__all__ = ["new_workspace"]  # the fixture, shared with test_recipes
pytestmark = pytest.mark.usefixtures("bwrap_available")


def test_a_repository_that_says_fix_true_still_gets_its_finding_fixed_and_counted(
    new_workspace: WorkspaceFactory,
) -> None:
    ws = new_workspace(
        {"ruff.toml": "fix = true\n", "app.py": "import os\nimport sys\n\nprint(sys.argv)\n"}
    )
    proposal = LintFixEngine().propose(LINT, ws, [])
    assert _changed(ws) == {"app.py": "import sys\n\nprint(sys.argv)\n"}
    assert proposal.details == {"fixed": {"F401": 1}, "remaining": 0}


def test_findings_ruff_cannot_fix_are_a_failure_never_nothing_to_do(
    new_workspace: WorkspaceFactory,
) -> None:
    ws = new_workspace({"app.py": "print(undefined_name)\n"})  # F821: no automatic fix
    with pytest.raises(EngineError, match=r"can fix none of the 1 findings .*\(F821\)") as err:
        LintFixEngine().propose(LINT, ws, [])
    assert not isinstance(err.value, NothingToDo)
    assert ws.changes().is_empty
