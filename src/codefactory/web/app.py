"""The web app: the webhook endpoints, `GET /api/runs`, `GET /api/runs/{id}`, the deliveries,
the audit status and a dashboard page."""

from __future__ import annotations

import html
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import HTMLResponse

from codefactory.dispatch.service import Dispatch, build_dispatch
from codefactory.runs.report import run_report
from codefactory.store.runs import run_as_dict
from codefactory.web.identity_routes import identity_router
from codefactory.web.webhooks import Problem, webhook_router

if TYPE_CHECKING:
    from codefactory.factory import Factory


def create_app(factory: Factory, dispatch: Dispatch | None = None) -> FastAPI:
    """The app over one factory's store; webhooks go to `dispatch`'s intake (by default one
    without workers: runs are stored and decided, and wait for a `serve` process's workers)."""
    app = FastAPI(title="Code Factory", version="0.1.0")
    dispatch = dispatch or build_dispatch(factory, workers=0)
    app.include_router(webhook_router(dispatch.intake))
    app.include_router(identity_router(factory))

    @app.get("/api/deliveries")
    def list_deliveries(
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[dict[str, Any]]:
        return [asdict(d) for d in dispatch.queue.search(limit=limit)]

    @app.get("/api/runs")
    def list_runs(limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
        return [run_as_dict(run) for run in factory.store.search_runs(limit=limit)]

    @app.get(
        "/api/runs/{run_id}", responses={404: {"model": Problem, "description": "No such run"}}
    )
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
