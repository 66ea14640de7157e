"""The browser the dashboard's tests drive: Debian's headless Chromium through Playwright.

Playwright's own browser download cannot be fetched here, so the system Chromium is used
(`executable_path`), started with the flags that keep it off the network
(../shared FIELD-NOTES, "The browser"). A missing Chromium fails the test with what to do:
`make install` installs it; nothing is skipped silently.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
"""Playwright gives each launch a fresh user data directory of its own."""
ARTIFACTS_ENV = "CODEFACTORY_TEST_ARTIFACTS"


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots are kept after the run: `$CODEFACTORY_TEST_ARTIFACTS`, else
    `tests/browser/artifacts/` (git ignores its contents)."""
    folder = Path(os.environ.get(ARTIFACTS_ENV) or Path(__file__).parent / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """A headless Chromium (Playwright `Browser`), closed after the module."""
    if not CHROMIUM.is_file():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests drive Debian's chromium; `make install` "
            "installs it (apt-get install chromium)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            yield launched
        finally:
            launched.close()
