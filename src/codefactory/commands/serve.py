"""`codefactory serve`: the web app (webhooks, runs API, dashboard), its workers and schedules."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from codefactory.commands.common import build, console, fail, state
from codefactory.terminal import shown

if TYPE_CHECKING:
    from codefactory.web.settings import WebSettings


def register(app: typer.Typer) -> None:
    """Add these commands to the root app."""
    app.command()(serve)
    app.command()(worker)


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[
        int,
        typer.Option(
            min=0,
            help="Worker threads running runs (0: intake, API and dashboard without "
            "execution; with the celery executor runs execute in `codefactory worker`).",
        ),
    ] = 2,
    triggers: Annotated[
        Path | None,
        typer.Option(help="TOML file of trigger settings (secrets, repositories, schedules)."),
    ] = None,
) -> None:
    """Serve the webhook endpoints, the runs API and the dashboard, with workers and schedules."""
    if triggers is not None:
        load_triggers_file(triggers)
    serve_app(host, port, workers=workers)


def worker(
    concurrency: Annotated[
        int, typer.Option(min=1, help="Runs this worker drives at once (threads).")
    ] = 2,
    triggers: Annotated[
        Path | None,
        typer.Option(help="TOML file of trigger settings (repositories, secrets)."),
    ] = None,
) -> None:
    """Run one Celery worker driving runs (CODEFACTORY_DISPATCH__EXECUTOR=celery, with
    CODEFACTORY_DISPATCH__BROKER_URL); any number may run, on any machine sharing the
    database and the broker."""
    if triggers is not None:
        load_triggers_file(triggers)
    settings = state.settings
    if settings.dispatch.executor != "celery":
        fail(
            "codefactory worker needs the celery executor: set CODEFACTORY_DISPATCH__EXECUTOR="
            "celery and CODEFACTORY_DISPATCH__BROKER_URL (the threads executor runs inside "
            "codefactory serve)"
        )
    if not settings.dispatch.broker_url.get_secret_value():
        fail("codefactory worker needs CODEFACTORY_DISPATCH__BROKER_URL (redis:// or amqp://)")
    from codefactory.dispatch.worker import run_worker
    from codefactory.observability.logs import configure_logging

    configure_logging(settings)
    factory = build()
    console.print(
        f"worker driving up to {concurrency} runs at once; broker "
        f"{shown(_safe_url(settings.dispatch.broker_url.get_secret_value()))}",
        highlight=False,
    )
    run_worker(factory, concurrency=concurrency)


def _safe_url(url: str) -> str:
    """`url` without its password (kombu's own rendering, `sanitize=True`)."""
    from kombu.utils.url import as_url, url_to_parts

    return str(as_url(*url_to_parts(url), sanitize=True))  # type: ignore[arg-type]


def load_triggers_file(path: Path) -> None:
    """Replace the trigger settings with the file's; secrets from the environment fill gaps."""
    from pydantic import ValidationError

    from codefactory.config import Settings

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        fail(f"cannot read the trigger settings {path}: {err}")
    current = state.settings.model_dump(exclude={"triggers"})
    try:
        state.settings = Settings.model_validate({**current, "triggers": data})
    except ValidationError as err:
        fail(f"invalid trigger settings in {path}: {err}")


def serve_app(host: str, port: int, *, workers: int = 2) -> None:
    """Serve the app for the current settings until interrupted."""
    import uvicorn

    from codefactory.dispatch.service import build_dispatch
    from codefactory.observability.logs import configure_logging
    from codefactory.web.app import create_app
    from codefactory.web.server import server_config

    configure_logging(state.settings)
    dispatching = state.settings.dispatch
    if dispatching.executor == "celery" and not dispatching.broker_url.get_secret_value():
        fail("the celery executor needs CODEFACTORY_DISPATCH__BROKER_URL (redis:// or amqp://)")
    factory = build()
    from codefactory.identity.trust_report import warn_unprotected_keys

    warn_unprotected_keys(state.settings)  # keys in the data folder: said loudly
    from codefactory.runs.policy_log import governance_notices

    configured = state.settings
    from codefactory.identity.governance import statement_verifier

    verifier = statement_verifier(configured, factory.identity.directory)
    registry_file = configured.engines.registry
    notices = governance_notices(configured.policy_file, registry_file, factory.audit, verifier)
    for notice in notices:
        console.print(f"[yellow]four eyes:[/] {shown(notice)}", highlight=False)
    web = factory.settings.web
    dispatch = build_dispatch(factory, workers=workers)
    try:
        app = create_app(factory, dispatch, bound_host=host)
    except OSError as err:  # the session key: unreadable, or readable by others
        fail(f"cannot start the web app: {err}")
    dispatch.start()
    executes = (
        f"{workers} worker threads"
        if dispatch.executing
        else "runs executed by codefactory worker processes"
        if dispatch.outbox is not None
        else "no execution (--workers 0)"
    )
    console.print(f"serving on http://{host}:{port}, {executes} (Ctrl-C to stop)", highlight=False)
    announce_login(web, host)
    from codefactory.hosts import is_loopback

    if not is_loopback(host) and not state.settings.observability.metrics_token:
        console.print(
            "[yellow]/metrics answers anyone who reaches this address (run counts, queue "
            "depth, engine cost): set CODEFACTORY_OBSERVABILITY__METRICS_TOKEN[/]",
            highlight=False,
        )
    try:
        config = server_config(
            app, host=host, port=port, limits=web.limits, trusted_proxies=web.trusted_proxies
        )
        uvicorn.Server(config).run()
    finally:
        dispatch.stop()


def announce_login(web: WebSettings, host: str) -> None:
    """Say how people log in (or loudly that nobody can) and which host names are served."""
    from codefactory.web.auth import ISSUER_ENV

    if web.oidc_issuer:
        console.print(
            f"login: OpenID Connect at {shown(web.oidc_issuer)} ({shown(provider_status(web))})",
            highlight=False,
        )
    else:
        console.print(
            f"[bold red]no identity provider: every route but the webhooks, health checks "
            f"and published keys answers 401 until {ISSUER_ENV} is set[/]",
            highlight=False,
        )
    console.print(f"trusted hosts: {shown(', '.join(web.hosts_for(host)))}", highlight=False)
    proxies = ", ".join(web.trusted_proxies) or "none (forwarded headers are ignored)"
    console.print(f"trusted proxies: {shown(proxies)}", highlight=False)


def provider_status(web: WebSettings) -> str:
    """`reachable`, or why the identity provider's discovery cannot be read (logins and
    bearer tokens then fail closed until it can)."""
    import asyncio

    from codefactory.web.auth_oidc import OidcProvider, ProviderUnavailable

    provider = OidcProvider(
        web.oidc_issuer or "", audiences=web.audiences(), algorithms=web.oidc_algorithms
    )
    try:
        asyncio.run(provider.metadata())
    except ProviderUnavailable as err:
        return f"UNREACHABLE, logins fail until it answers: {err}"
    return "reachable"
