"""Evidence of each verify round, kept on disk even when the run fails."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from codefactory.domain import CheckResult


def write_round_evidence(folder: Path, results: Sequence[CheckResult]) -> None:
    """Write each check's evidence file of one round into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for result in results:
        if result.evidence_name:
            (folder / Path(result.evidence_name).name).write_text(result.evidence)


def failing_summary(results: Sequence[CheckResult]) -> str:
    """`lint (2 findings), tests (1 finding)` for the failed checks."""
    parts = []
    for result in results:
        count = len(result.findings)
        parts.append(f"{result.check} ({count} finding{'s' if count != 1 else ''})")
    return ", ".join(parts) or "no results"
