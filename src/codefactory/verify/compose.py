"""The default gate, as the composition root (`factory.py`) and `codefactory verify` build it.

Order is the order of the evidence: the scope of the change first, then the integrity of its
judges (tests, tool configuration, suppressions), lint (ruff, ESLint), secrets, SAST and SCA
(cheap, in parallel), then the tests (pytest, the JavaScript test script), then the checks a
repository config adds. Each runs when the repository has its ecosystem; a repository config
may skip only the `SKIPPABLE_CHECKS` (lint and tests).
"""

from __future__ import annotations

from codefactory.advisories import AdvisoryDatabase
from codefactory.sandbox.port import Sandbox
from codefactory.verify.applicable import SKIPPABLE_CHECKS
from codefactory.verify.base import SetupPhase
from codefactory.verify.cache import VerifyCache
from codefactory.verify.diff_policy import DiffPolicyCheck
from codefactory.verify.eslint import EslintCheck
from codefactory.verify.gate import Gate
from codefactory.verify.integrity import IntegrityCheck
from codefactory.verify.js_tests import JsTestsCheck
from codefactory.verify.lint import RuffCheck
from codefactory.verify.port import Check
from codefactory.verify.sast import SastCheck
from codefactory.verify.sca import ScaCheck
from codefactory.verify.scope import GlobScope, ScopePolicy
from codefactory.verify.secrets import SecretsCheck
from codefactory.verify.settings import VerifySettings
from codefactory.verify.tests import PytestCheck


def default_checks(
    settings: VerifySettings,
    *,
    advisories: AdvisoryDatabase,
    cache: VerifyCache,
    python: str,
    test_timeout_s: float,
    scope: ScopePolicy | None = None,
    scope_deferred: bool = False,
) -> list[Check]:
    """diff policy, integrity, lint (ruff, ESLint), secrets, SAST, SCA and the tests (pytest,
    the JavaScript test script), from `settings`."""
    limits = settings.diff_policy
    timeout = settings.check_timeout_s
    return [
        DiffPolicyCheck(scope or GlobScope(limits.blocked_paths), limits, deferred=scope_deferred),
        IntegrityCheck(timeout_s=test_timeout_s),
        RuffCheck(timeout_s=timeout),
        EslintCheck(timeout_s=timeout),
        SecretsCheck(python=python, timeout_s=timeout),
        SastCheck(python=python, timeout_s=timeout),
        ScaCheck(advisories, max_age_days=settings.advisories_max_age_days),
        PytestCheck(
            timeout_s=test_timeout_s,
            cache=cache,
            select=settings.select_tests,
            min_changed_line_coverage=settings.min_changed_line_coverage,
        ),
        JsTestsCheck(timeout_s=test_timeout_s),
    ]


def default_gate(
    settings: VerifySettings,
    *,
    advisories: AdvisoryDatabase,
    cache: VerifyCache,
    sandbox: Sandbox,
    setup: SetupPhase,
    python: str,
    test_timeout_s: float,
) -> Gate:
    """The run loop's gate: the default checks, their baselines from `cache` and the sandbox.

    The loop asks policy for the scope of the change when it packages it, so paths out of
    scope are reported here, not blocking (`worktree_gate` blocks on them).
    """
    checks = default_checks(
        settings,
        advisories=advisories,
        cache=cache,
        python=python,
        test_timeout_s=test_timeout_s,
        scope_deferred=True,
    )
    return Gate(
        checks,
        settings=settings,
        cache=cache,
        sandbox=sandbox,
        setup=setup,
        skippable=SKIPPABLE_CHECKS,
        custom_timeout_s=test_timeout_s,
    )


def worktree_gate(run_gate: Gate) -> Gate:
    """The gate of `codefactory verify`: the run loop's, with the scope check blocking."""
    checks = [c.blocking_paths() if isinstance(c, DiffPolicyCheck) else c for c in run_gate.checks]
    return Gate(
        checks,
        settings=run_gate.settings,
        cache=run_gate.cache,
        sandbox=run_gate.sandbox,
        setup=run_gate.setup,
        skippable=run_gate.skippable,
        detect=run_gate.detect,
        custom_timeout_s=run_gate.custom_timeout_s,
    )
