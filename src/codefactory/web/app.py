"""The web app: `GET /api/runs`, `GET /api/runs/{id}`, the audit status and a dashboard page."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse

from codefactory.runs.report import run_report
from codefactory.store.runs import run_as_dict

if TYPE_CHECKING:
    from codefactory.factory import Factory


def create_app(factory: Factory) -> FastAPI:
    """The app over one factory's store."""
    app = FastAPI(title="Code Factory", version="0.1.0")

    @app.get("/api/runs")
    def list_runs(limit: int = 100) -> list[dict[str, Any]]:
        return [run_as_dict(run) for run in factory.store.search_runs(limit=limit)]

    @app.get("/api/runs/{run_id}")
    def show_run(run_id: str) -> dict[str, Any]:
        report = run_report(factory.store, run_id)
        if report is None:
            raise HTTPException(status_code=404, detail=f"no run with id {run_id!r}")
        return report

    @app.get("/api/audit/verify")
    def verify_audit() -> dict[str, Any]:
        report = factory.audit.verify()
        return {
            "ok": report.ok,
            "count": report.count,
            "first_bad_seq": report.first_bad_seq,
            "reason": report.reason,
        }

    @app.get("/", response_class=HTMLResponse)
    def dashboard() -> str:
        rows = "".join(
            f"<tr><td><a href='/api/runs/{html.escape(run.id)}'>{html.escape(run.id)}</a></td>"
            f"<td>{html.escape(run.state.value)}</td><td>{html.escape(run.kind.value)}</td>"
            f"<td>{html.escape(run.sponsor)}</td><td>{html.escape(run.reason)}</td></tr>"
            for run in factory.store.search_runs(limit=200)
        )
        return (
            "<!doctype html><html><head><meta charset='utf-8'><title>Code Factory</title></head>"
            "<body><h1>Code Factory runs</h1><table border='1' cellpadding='4'>"
            "<tr><th>run</th><th>state</th><th>kind</th><th>sponsor</th><th>reason</th></tr>"
            f"{rows}</table></body></html>"
        )

    return app
