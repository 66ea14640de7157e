"""The web app: the webhook endpoints, `GET /api/runs`, `GET /api/runs/{id}`, the deliveries,
the audit status, Prometheus' `GET /metrics` and the reviewers' dashboard (`web.dashboard`);
every route but the webhooks, the health checks, the metrics (their own token) and the
published keys behind an OpenID Connect login or a bearer token (`web.auth`), for trusted
host names only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request, Response
from starlette.middleware.sessions import SessionMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from codefactory.dispatch.service import Dispatch, build_dispatch
from codefactory.observability.exposition import MetricsEndpoint
from codefactory.observability.exposition import refused as metrics_refused
from codefactory.runs.report import run_report
from codefactory.store.runs import run_as_dict
from codefactory.web.auth import AuthGate, WebAuth, session_secret
from codefactory.web.auth_routes import auth_router
from codefactory.web.dashboard import dashboard_router
from codefactory.web.dashboard.refusals import VerdictRefusals
from codefactory.web.forge_grants import forge_grant_router
from codefactory.web.identity_routes import identity_router
from codefactory.web.intake_fast_path import StoreOnlyIntake
from codefactory.web.webhooks import Problem, webhook_router

if TYPE_CHECKING:
    from codefactory.factory import Factory
    from codefactory.review.port import ForgeHost


def create_app(
    factory: Factory, dispatch: Dispatch | None = None, *, bound_host: str | None = None
) -> FastAPI:
    """The app over one factory's store; webhooks go to `dispatch`'s intake (by default one
    without workers: runs are stored and decided, and wait for a `serve` process's workers).
    `bound_host` (the address `serve` listens on) joins the trusted host names."""
    web = factory.settings.web
    auth = WebAuth(web, directory=factory.identity.directory, audit=factory.audit)

    refusals = VerdictRefusals(factory.store.append)  # refused verdict posts, per person

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        auth.audit.flush()  # the refusals counted since their window's first event
        refusals.flush()

    app = FastAPI(title="Code Factory", version="0.1.0", lifespan=lifespan)
    dispatch = dispatch or build_dispatch(factory, workers=0)
    app.include_router(webhook_router(dispatch.intake))
    app.include_router(identity_router(factory))
    app.include_router(auth_router(factory, auth))
    app.include_router(dashboard_router(factory, refusals))
    app.include_router(forge_grants(factory, auth))  # each person's OAuth grant on the forge
    # outermost last: hosts are checked first, then deliveries only to be stored are taken,
    # then the session is read, then the gate
    app.add_middleware(ClientGone)
    app.add_middleware(AuthGate, auth=auth)
    app.add_middleware(
        SessionMiddleware,
        secret_key=session_secret(web, factory.settings.data_dir),
        session_cookie="codefactory_session",
        max_age=web.session_lifetime_s,
        same_site="lax",
        https_only=bool(web.public_url and web.public_url.startswith("https://")),
    )
    app.add_middleware(StoreOnlyIntake, intake=dispatch.intake)  # skips the rest: see there
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=web.hosts_for(bound_host))

    @app.get("/api/deliveries")
    def list_deliveries(
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[dict[str, Any]]:
        return [asdict(d) for d in dispatch.queue.search(limit=limit)]

    @app.get("/api/runs")
    def list_runs(
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        repository: Annotated[str | None, Query(max_length=1000)] = None,
    ) -> list[dict[str, Any]]:
        found = factory.store.search_runs(limit=limit, repository=repository)
        return [run_as_dict(run) for run in found]

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

    metrics = MetricsEndpoint(factory.store.engine, factory.settings.observability)

    @app.get("/metrics", include_in_schema=False)
    def scrape_metrics(request: Request) -> Response:
        """Prometheus' scrape (docs/operations.md): public, or behind the metrics token."""
        if not metrics.admits(request.headers.get("authorization")):
            client = request.client.host if request.client else ""
            auth.audit.refused(client, "other", "GET /metrics without the metrics token")
            return metrics_refused()
        return metrics.scrape()

    return app


def forge_grants(factory: Factory, auth: WebAuth) -> APIRouter:
    """The grant routes (review/forges/grants.py), keeping a token only when the forge says
    it is an account the directory lists for the signed-in person."""
    from codefactory.identity.directory import IdentityKind, Person
    from codefactory.review.forges.build import forge_host

    forge = factory.settings.forge
    directory = factory.identity.directory

    def lent_host(token: str) -> ForgeHost:
        built = forge_host(factory.settings, lent_token=token)
        assert built is not None  # the type is not local
        return built

    def holder_of(login: str) -> Person | None:
        return directory.resolve(IdentityKind(forge.type), login)

    return forge_grant_router(
        forge,
        base_url=auth.base_url,
        record=factory.store.append,
        host=lent_host if forge.is_remote else None,
        holder_of=holder_of if forge.is_remote else None,
    )


class ClientGone:
    """ASGI middleware: a request whose client went away (or whose connection the server
    closed for its deadline or minimum rate) ends quietly; there is nobody to answer, and a
    traceback per dropped slow connection would let a caller flood the server's log."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except ClientDisconnect:
            return
