"""Risk assessment from what a change touches, not from what the engine says about it."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from codefactory.domain import Change, ChangeKind, CheckResult
from codefactory.projects.dependency_files import is_dependency_file

LEVELS = ("low", "moderate", "high")
_MODERATE_SCORE = 30
_HIGH_SCORE = 60

# Files that pin what runs in production: changing them changes a runtime dependency.
# Paths that change how code is built, tested or deployed: the controls themselves.
CI_INFRA_DIRS = (
    ".github", ".gitlab", ".circleci", ".buildkite", ".tekton", "terraform", "k8s",
    "kubernetes", "helm", "charts", "deploy", "deployment", "ansible", "infra",
)  # fmt: skip
CI_INFRA_FILES = (
    ".gitlab-ci.yml", "Jenkinsfile", "azure-pipelines.yml", "bitbucket-pipelines.yml",
    "Dockerfile*", "Containerfile*", "*.dockerfile", "docker-compose*.yml",
    "docker-compose*.yaml", "compose.yaml", "compose.yml", "*.tf", "*.tfvars", "*.hcl",
    "Makefile", "tox.ini", "noxfile.py", ".pre-commit-config.yaml", "CODEOWNERS",
)  # fmt: skip
DOC_SUFFIXES = frozenset({".md", ".rst", ".txt", ".adoc"})


@dataclass(frozen=True, kw_only=True)
class RiskAssessment:
    """A level a change-approval board understands, the score behind it and the reasons."""

    level: str
    score: int
    factors: tuple[str, ...]

    def to_json(self) -> str:
        """The `risk.json` of a change package."""
        body = {"level": self.level, "score": self.score, "factors": list(self.factors)}
        return json.dumps(body, indent=2) + "\n"


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def is_ci_or_infrastructure(path: str) -> bool:
    """A pipeline, container, deployment or infrastructure-as-code file."""
    pure = PurePosixPath(path)
    return bool(set(pure.parts[:-1]) & set(CI_INFRA_DIRS)) or _matches(pure.name, CI_INFRA_FILES)


def lines_changed(patch: str) -> int:
    """Added plus removed lines of a unified patch, headers excluded."""
    return sum(
        1
        for line in patch.splitlines()
        if line[:1] in "+-" and not line.startswith(("+++ ", "--- "))
    )


def _level_of(score: int) -> str:
    if score >= _HIGH_SCORE:
        return "high"
    return "moderate" if score >= _MODERATE_SCORE else "low"


class _Tally:
    """Factors with the points they add and the least level each one forces."""

    def __init__(self) -> None:
        self.score = 0
        self.floor = "low"
        self.factors: list[str] = []

    def add(self, factor: str, points: int, floor: str = "low") -> None:
        self.factors.append(factor)
        self.score += points
        if LEVELS.index(floor) > LEVELS.index(self.floor):
            self.floor = floor

    def assessment(self) -> RiskAssessment:
        score = min(self.score, 100)
        level = max(_level_of(score), self.floor, key=LEVELS.index)
        return RiskAssessment(level=level, score=score, factors=tuple(self.factors))


def _path_factors(tally: _Tally, change: Change, kind: ChangeKind) -> None:
    paths = change.paths
    infra = [p for p in paths if is_ci_or_infrastructure(p)]
    deps = [p for p in paths if is_dependency_file(p) and p not in infra]
    code = [p for p in paths if p not in infra and p not in deps]
    if infra:
        tally.add(f"changes CI or infrastructure: {', '.join(infra)}", 60, "high")
    if deps:
        tally.add(f"changes a runtime dependency: {', '.join(deps)}", 30, "moderate")
    source = [p for p in code if PurePosixPath(p).suffix not in DOC_SUFFIXES]
    lint_only = kind is ChangeKind.FIX_LINT and all(p.endswith(".py") for p in source)
    if source and lint_only:
        tally.add(f"lint-style edits to {len(source)} Python file(s)", 0)
    elif source:
        tally.add(f"changes application code: {', '.join(source)}", 20, "moderate")
    deleted = [f.path for f in change.files if f.content is None]
    if deleted:
        tally.add(f"deletes {len(deleted)} file(s): {', '.join(deleted)}", 10)


def assess_risk(
    change: Change, kind: ChangeKind, results: Sequence[CheckResult], *, patch: str = ""
) -> RiskAssessment:
    """Score a change by the paths it touches, its size and its checks' outcome."""
    tally = _Tally()
    if kind in (ChangeKind.MODIFY_CI, ChangeKind.MODIFY_INFRASTRUCTURE):
        tally.add(f"the task asks to {kind.value.replace('_', ' ')}", 60, "high")
    _path_factors(tally, change, kind)
    size = lines_changed(patch)
    if size:
        # One point per ten changed lines, at most 40: a big change is harder to review.
        tally.add(f"{size} line(s) changed", min(size // 10, 40))
    for failed in (r for r in results if not r.passed):
        tally.add(f"check {failed.check} failed: {failed.summary or 'see evidence'}", 60, "high")
    if not results:
        tally.add("no check ran", 30, "moderate")
    return tally.assessment()
