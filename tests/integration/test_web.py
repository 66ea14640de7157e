"""The web app in-process (httpx.ASGITransport) over a real SQLite store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from codefactory.config import Settings
from codefactory.factory import build_factory
from codefactory.runs.tickets import accept_ticket
from codefactory.web.app import create_app
from tests.acceptance.conftest import TEMPLATE
from tests.conftest import asgi_get
from tests.oidc_helpers import OidcProvider, oidc_settings, web_headers


def test_runs_api_and_dashboard(tmp_path: Path, oidc_provider: OidcProvider) -> None:
    extra = oidc_settings(oidc_provider, tmp_path / "people")
    factory = build_factory(Settings(data_dir=tmp_path / "data", **extra))
    ticket = (TEMPLATE / "tickets" / "SVC-103.json").read_bytes()
    run = accept_ticket(factory, payload=ticket, repo=tmp_path)
    app = create_app(factory)

    def get(app: Any, path: str) -> httpx.Response:
        return asgi_get(app, path, web_headers(oidc_provider))

    runs = get(app, "/api/runs").json()
    assert [r["id"] for r in runs] == [run.id]
    assert runs[0]["state"] == "refused"

    shown = get(app, f"/api/runs/{run.id}").json()
    assert shown["decisions"][0]["allowed"] is False
    assert shown["decisions"][0]["policy_ids"] == ["no-autonomous-ci-changes"]
    assert shown["trigger"]["external_id"] == "SVC-103"

    missing = get(app, "/api/runs/r-nope")
    assert missing.status_code == 404 and "r-nope" in missing.json()["detail"]

    assert get(app, "/api/audit/verify").json()["ok"] is True
    page = get(app, "/")
    assert page.status_code == 200 and run.id in page.text
    assert "Priya Shah (user:priya.shah)" in page.text and "/logout" in page.text
    assert "/api/runs/{run_id}" in get(app, "/openapi.json").json()["paths"]
