"""Evidence of each verify round, kept on disk even when the run fails."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from codefactory.domain import Change, CheckResult


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


def change_digest(change: Change) -> dict[str, str]:
    """Path → SHA-256 of its new content (`deleted` for a removal): two changes are the same
    diff exactly when these are equal (`runs replay` compares them)."""
    return {
        f.path: "deleted" if f.content is None else hashlib.sha256(f.content).hexdigest()
        for f in sorted(change.files, key=lambda f: f.path)
    }
