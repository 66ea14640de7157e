"""Settings of the feedback loop: thresholds, waivers, the diff policy's limits, speed.

These are the factory operator's settings (the policy of the gate), never the repository's:
a repository cannot switch a check off. Set them in the environment, e.g.
`CODEFACTORY_VERIFY__THRESHOLDS='{"sast": "high"}'` or `CODEFACTORY_VERIFY__WAIVERS='[...]'`.
"""

from __future__ import annotations

import os
from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from codefactory.domain import Severity

DEFAULT_BLOCKED_PATHS = (
    ".github/**",
    ".gitlab-ci.yml",
    ".gitlab/**",
    ".circleci/**",
    ".buildkite/**",
    "Jenkinsfile",
    "azure-pipelines.yml",
    ".azure-pipelines/**",
    "bitbucket-pipelines.yml",
    ".pre-commit-config.yaml",
    "CODEOWNERS",
    ".codeowners",
    "Dockerfile",
    "**/Dockerfile",
    "*.tf",
    "**/*.tf",
    "terraform/**",
    "infra/**",
    "infrastructure/**",
    "deploy/**",
    "k8s/**",
    "helm/**",
    "ansible/**",
)
"""CI pipelines, code ownership and infrastructure: out of an agent's scope by default."""


DEFAULT_MAX_AGE_DAYS = 7
"""Advisory data older than a week blocks SCA by default (issue 10, item 4)."""
MAX_AGE_ENV = "CODEFACTORY_VERIFY__ADVISORIES_MAX_AGE_DAYS"
_NO_LIMIT = frozenset({"", "none", "null", "off", "unlimited"})


def _max_age(value: Any) -> Any:
    """`none`, `null`, `off` or empty (as an environment variable spells it) mean no limit."""
    if isinstance(value, str) and value.strip().lower() in _NO_LIMIT:
        return None
    return value


class Waiver(BaseModel):
    """An approved exception: matching findings are reported but do not block."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    check: str
    """The check it applies to (`lint`, `sast`, `secrets`, `sca`, `tests`, `diff_policy`) or `*`.
    """
    rule: str
    """The rule id (`B602`, `PYSEC-2024-60`, `F401`), or `*`."""
    path: str = "*"
    """A glob over the finding's path (`service/*.py`); `*` matches every path."""
    fingerprint: str = ""
    """Only the finding with this fingerprint (from the SARIF evidence), when given."""
    approver: str = Field(min_length=1)
    """Who approved the exception; recorded in the audit log each time it is used."""
    reason: str = Field(min_length=1)
    """Why the exception is acceptable."""
    expires: date | None = None
    """The last day the waiver applies; afterwards the finding blocks again."""
    signed_at: str = ""
    """When the approver signed the waiver (RFC 3339 UTC; `codefactory identity sign-waiver`)."""
    signature: str = ""
    """The approver's SSH signature over the waiver's governance statement (namespace
    `codefactory-governance`); a waiver without a good one, by a directory person with the
    `security` role, is not applied (`runs.waiver_log`)."""


class DiffPolicySettings(BaseModel):
    """Limits of the diff-policy check (the scope of a change)."""

    model_config = ConfigDict(extra="forbid")

    blocked_paths: tuple[str, ...] = DEFAULT_BLOCKED_PATHS
    """Globs of paths no change may touch (CI pipelines, infrastructure)."""
    max_files: int = 50
    """More changed files than this blocks the change."""
    max_lines: int = 2000
    """More changed lines (added plus removed) than this blocks the change."""
    dependency_changes: str = Field(default="report", pattern="^(allow|report|block)$")
    """A dependency-file edit: `allow` it silently, `report` it (not blocking), or `block` it."""


class VerifySettings(BaseModel):
    """Settings of the feedback loop (checks, thresholds, caches)."""

    model_config = ConfigDict(extra="forbid")

    default_threshold: Severity = Severity.LOW
    """A new finding at or above this severity blocks, unless a check has its own threshold."""
    thresholds: dict[str, Severity] = Field(default_factory=lambda: {"sast": Severity.MEDIUM})
    """Per-check thresholds; bandit's low-severity notes (asserts, `import subprocess`) inform."""
    waivers: tuple[Waiver, ...] = ()
    """Approved exceptions; each use is an audit event naming its approver."""
    stop_early: bool = True
    """Skip the test suite once a cheap check has a blocking finding."""
    select_tests: bool = True
    """Run only the tests that reach the changed code, from the base commit's test map."""
    check_timeout_s: float = 120.0
    """Wall-clock limit of one scanner run inside the sandbox."""
    min_changed_line_coverage: float | None = Field(default=None, ge=0, le=100)
    """Percent of the change's executable lines the tests must run (docs/verify.md,
    "Coverage of the changed lines"); under it, `changed-lines-under-covered` blocks, and a
    measurement that could not be taken blocks too. None (the default): evidence for QA only."""
    diff_policy: DiffPolicySettings = Field(default_factory=DiffPolicySettings)
    advisories_max_age_days: int | None = Field(
        default_factory=lambda: _max_age(os.environ.get(MAX_AGE_ENV, DEFAULT_MAX_AGE_DAYS)), ge=0
    )
    """SCA blocks (`advisories-stale`) when the advisory data of an ecosystem the repository
    uses was synced longer ago than this many days, or never (the copy shipped with the
    package); `none` accepts any age. The default also reads `CODEFACTORY_VERIFY__ADVISORIES_
    MAX_AGE_DAYS`, so a check built without settings follows the operator's choice."""

    @field_validator("advisories_max_age_days", mode="before")
    @classmethod
    def _no_limit(cls, value: Any) -> Any:
        return _max_age(value)

    def threshold(self, check: str) -> Severity:
        return self.thresholds.get(check, self.default_threshold)
