"""The advisory-age limit as an operator sets it, and lock entries that name no index release."""

from __future__ import annotations

import pytest

from codefactory.advisories import find_locked
from codefactory.config import Settings
from codefactory.verify.settings import MAX_AGE_ENV, VerifySettings


def test_the_age_limit_defaults_to_a_week_and_none_means_no_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(MAX_AGE_ENV, raising=False)
    assert VerifySettings().advisories_max_age_days == 7
    for spelling in ("none", "None", "null", "off", ""):
        monkeypatch.setenv(MAX_AGE_ENV, spelling)
        assert VerifySettings().advisories_max_age_days is None
        assert Settings().verify.advisories_max_age_days is None
    monkeypatch.setenv(MAX_AGE_ENV, "30")
    assert Settings().verify.advisories_max_age_days == 30
    assert VerifySettings(advisories_max_age_days="none").advisories_max_age_days is None
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        VerifySettings(advisories_max_age_days=-1)


def test_pylock_packages_from_vcs_directories_or_archives_are_not_index_pins() -> None:
    text = """\
lock-version = "1.0"
created-by = "uv"

[[packages]]
name = "idna"
version = "3.6"
wheels = [{ url = "https://files.pythonhosted.org/idna-3.6-py3-none-any.whl" }]

[[packages]]
name = "click"
version = "8.1.7"
vcs = { type = "git", url = "https://github.com/pallets/click", commit-id = "abc" }

[[packages]]
name = "app"
version = "0.1.0"
directory = { path = "." }
"""
    assert [(p.name, p.version, p.line) for p in find_locked("pylock.toml", text)] == [
        ("idna", "3.6", 5)
    ]
