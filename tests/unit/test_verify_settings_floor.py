"""The changed-line coverage floor is a setting the gate's test check receives."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from codefactory.advisories import AdvisoryDatabase
from codefactory.factory import SHIPPED_ADVISORIES
from codefactory.verify.cache import MemoryVerifyCache
from codefactory.verify.compose import default_checks
from codefactory.verify.settings import VerifySettings
from codefactory.verify.tests import PytestCheck


def test_the_floor_reaches_the_test_check_and_is_a_percentage(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert VerifySettings().min_changed_line_coverage is None
    monkeypatch.setenv("CODEFACTORY_VERIFY__MIN_CHANGED_LINE_COVERAGE", "80")
    from codefactory.config import Settings

    settings = Settings().verify
    assert settings.min_changed_line_coverage == 80
    with pytest.raises(ValidationError):
        VerifySettings(min_changed_line_coverage=101)
    checks = default_checks(
        settings,
        advisories=AdvisoryDatabase.load(SHIPPED_ADVISORIES),
        cache=MemoryVerifyCache(),
        python="python3",
        test_timeout_s=60,
    )
    (check,) = [c for c in checks if isinstance(c, PytestCheck)]
    assert check.min_changed_line_coverage == 80
