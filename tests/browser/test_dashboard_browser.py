"""The reviewers' dashboard in a real browser: Debian's headless Chromium driven by
Playwright, logging in through the OIDC provider's own form, against a factory served by
uvicorn on loopback with a packaged run in review. Each page's screenshot is kept
(`artifacts` fixture)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from codefactory.domain import RunState
from codefactory.web.app import create_app
from tests.browser.world import World, packaged_run, sign, world
from tests.oidc_helpers import OidcProvider, live_server

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, oidc_provider: OidcProvider
) -> Iterator[tuple[World, str, str]]:
    w = world(tmp_path_factory.mktemp("browser"), oidc_provider)
    run_id = packaged_run(w)
    with live_server(create_app(w.factory)) as url:
        yield w, url, run_id


def logged_in(browser: Any, url: str, sub: str) -> Any:
    """A fresh browser context (its own cookies) logged in as `sub` through the provider's
    authorization form; returns its page, back on the dashboard."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{url}/")
    page.fill('input[name="sub"]', sub)  # the provider's own page
    page.click('button[type="submit"]:has-text("Authorize")')
    page.wait_for_url(f"{url}/")
    return page


def shot(page: Any, artifacts: Path, name: str) -> None:
    page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)
    assert (artifacts / f"{name}.png").stat().st_size > 1000


def test_the_reviewer_reads_the_run_and_approves_it_and_the_sponsor_cannot(
    browser: Any, served: tuple[World, str, str], artifacts: Path
) -> None:
    w, url, run_id = served
    jordan = logged_in(browser, url, "jordan")
    queue = jordan.locator("#queue")
    assert queue.locator(f'a[href="/runs/{run_id}"]').count() == 1
    assert "Jordan Lee (user:jordan.lee)" in jordan.inner_text("header")
    shot(jordan, artifacts, "1-reviewer-queue")

    jordan.click(f'#queue a[href="/runs/{run_id}"]')
    jordan.wait_for_url(f"{url}/runs/{run_id}")
    added = jordan.locator("#diff tr.add span.gi")
    assert added.count() >= 1 and "<b>2</b>" in added.first.inner_text()  # text, not markup
    assert jordan.locator("#diff tr.finding").first.inner_text().count("Q000") == 1
    assert jordan.locator("#risk strong").first.inner_text() in ("low", "moderate", "high")
    assert "revert" in jordan.inner_text("#rollback").lower()
    assert "backout_plan" in jordan.inner_text("#cab")
    assert "run-created" in jordan.inner_text("#timeline")
    assert "verified" in jordan.inner_text("#proofs")
    assert jordan.locator("#state").inner_text() == "in_review"
    shot(jordan, artifacts, "2-run-page")

    priya = logged_in(browser, url, "priya")
    assert priya.locator(f'#queue a[href="/runs/{run_id}"]').count() == 0
    priya.goto(f"{url}/runs/{run_id}")
    refusal = priya.locator("#refusal")
    assert refusal.is_visible() and "is the sponsor of run" in refusal.inner_text()
    assert priya.locator("#signature").count() == 0
    shot(priya, artifacts, "3-sponsor-refused")

    jordan.check('input[name="verdict"][value="approve"]')
    jordan.fill("#comment", "reads well")
    jordan.click("#ask")
    statement = base64.b64decode(jordan.inner_text("#statement-b64").strip())
    assert json.loads(statement)["reviewer"] == "jordan.lee"
    assert json.loads(jordan.inner_text("#statement")) == json.loads(statement)
    assert "ssh-keygen -Y sign" in jordan.inner_text("#command")
    shot(jordan, artifacts, "4-statement-to-sign")
    jordan.fill("#signature", sign(statement, w.reviewer_key, w.tmp_path / "browser-sig"))
    jordan.click("#sign")
    jordan.wait_for_url(f"{url}/runs/{run_id}?recorded=approve")
    assert jordan.locator("#state").inner_text() == "handed_off"
    assert "reads well" in jordan.inner_text("#verdict")
    shot(jordan, artifacts, "5-approved")
    assert w.factory.store.require_run(run_id).state is RunState.HANDED_OFF
    jordan.context.close()
    priya.context.close()
