"""The rollback plan: how to undo the change before and after it is merged."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from codefactory.package.port import PackageContents


def advisory_ids(advisories: Any) -> list[str]:
    """Advisories as ids, whether the engine listed ids or OSV records."""
    if not isinstance(advisories, list | tuple):
        return []
    ids = []
    for advisory in advisories:
        if isinstance(advisory, Mapping):
            ids.append(str(advisory.get("id", "")))
        else:
            ids.append(str(advisory))
    return [i for i in ids if i]


def _bump_lines(bumps: Any) -> list[str]:
    lines: list[str] = []
    for bump in bumps if isinstance(bumps, list | tuple) else ():
        if not isinstance(bump, Mapping):
            continue
        pin = f"{bump.get('package', '?')}=={bump.get('from', '?')}"
        where = bump.get("file", "the dependency file")
        line = f"- restore `{pin}` in `{where}` (the change sets {bump.get('to', '?')})"
        advisories = advisory_ids(bump.get("advisories"))
        if advisories:
            line += f"; caveat: this re-opens {', '.join(advisories)}"
        lines.append(line)
    return lines


def rollback_plan(contents: PackageContents) -> str:
    """Markdown for `rollback.md`: the revert, then any dependency pins to restore."""
    run, commit, branch = contents.run, contents.commit, contents.branch
    lines = [
        f"# Rollback plan for run {run.id}",
        "",
        "## Before merge",
        "",
        f"Reject the review: the change lives only on branch `{branch}` of "
        f"`{contents.forge_repository}` and has not reached any other branch.",
        "",
        "## After merge",
        "",
        f"Revert commit `{commit}` on the branch it was merged into:",
        "",
        "```sh",
        f"git revert --no-edit {commit}",
        "```",
        "",
        "If it was merged with a merge commit, revert that merge instead "
        "(`git revert --no-edit -m 1 <merge-commit>`). The revert goes through review "
        "like any other change.",
    ]
    bumps = _bump_lines(contents.proposal.details.get("bumps"))
    if bumps:
        lines += ["", "## Dependency pins to restore", "", *bumps]
        lines += [
            "",
            "Restoring an old pin re-opens every advisory the bump fixed: "
            "treat the rollback as a risk acceptance and record it.",
        ]
    return "\n".join(lines) + "\n"
