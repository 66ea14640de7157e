"""`codefactory login|logout|whoami` and `codefactory remote runs`: the CLI of a person working
against a remote factory, authenticated by the bank's identity provider."""

from __future__ import annotations

import webbrowser
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from codefactory.commands.common import JsonOption, console, errors, fail, print_json
from codefactory.terminal import printable, shown

FactoryOption = Annotated[
    str,
    typer.Option(
        "--factory",
        envvar="CODEFACTORY_FACTORY_URL",
        help="Base URL of the factory (https://factory.bank.example).",
    ),
]

remote_app = typer.Typer(help="Read a remote factory with your login.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add these commands to the root app."""
    app.command()(login)
    app.command()(logout)
    app.command()(whoami)
    app.add_typer(remote_app, name="remote")


def login(
    factory: FactoryOption,
    no_browser: Annotated[
        bool, typer.Option("--no-browser", help="Only print the login URL.")
    ] = False,
    client_secret: Annotated[
        str | None,
        typer.Option(
            envvar="CODEFACTORY_LOGIN_CLIENT_SECRET",
            help="The CLI client's secret, for providers that give native apps one.",
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[float, typer.Option(min=1, help="Seconds to wait for the login.")] = 300,
    device: Annotated[
        bool,
        typer.Option(
            "--device",
            help="Device authorization grant (RFC 8628): approve with a code on any device.",
        ),
    ] = False,
) -> None:
    """Log in to a remote factory through its identity provider (browser, PKCE, loopback; or
    with `--device`, the device authorization grant, RFC 8628)."""
    from codefactory.web.auth_client import LoginFailed
    from codefactory.web.auth_client import login as native_login

    def show(url: str) -> None:
        errors.print("Open this URL in your browser to log in:", highlight=False)
        typer.echo(printable(url), err=True)  # built from the IdP's endpoint
        if not no_browser:
            webbrowser.open(url)

    try:
        if device:
            credentials = _device_login(factory, no_browser, client_secret, timeout)
        else:
            credentials = native_login(
                factory, open_browser=show, client_secret=client_secret, timeout_s=timeout
            )
        _store().put(credentials)
    except LoginFailed as err:
        fail(f"login failed: {err}")
    until = datetime.fromtimestamp(credentials.expires_at, UTC).isoformat(timespec="minutes")
    console.print(
        shown(f"logged in to {credentials.factory} as {credentials.subject} until {until}"),
        highlight=False,
    )


def _device_login(factory: str, no_browser: bool, client_secret: str | None, timeout: float) -> Any:
    """`login --device`: show the verification URI and user code (RFC 8628 §3.3)."""
    from codefactory.web.device_flow import DeviceCode, device_login

    def show(code: DeviceCode) -> None:
        errors.print(
            shown(f"To log in, open {code.verification_uri} and enter the code {code.user_code}"),
            highlight=False,
        )
        if code.verification_uri_complete:
            errors.print("or open this URL, which carries the code:", highlight=False)
            typer.echo(printable(code.verification_uri_complete), err=True)  # the IdP's text
            if not no_browser:
                webbrowser.open(code.verification_uri_complete)
        errors.print("Waiting for the login to be approved...", highlight=False)

    return device_login(factory, show=show, client_secret=client_secret, timeout_s=timeout)


def logout(
    factory: Annotated[
        str | None,
        typer.Option("--factory", help="Forget only this factory's token (default: all)."),
    ] = None,
) -> None:
    """Forget the tokens `codefactory login` kept (a token someone copied stays valid at the
    factory until its `exp`: it is the provider's, not a session the factory can end)."""
    from codefactory.web.auth_client import LoginFailed

    try:
        gone = _store().remove(factory)
    except LoginFailed as err:
        fail(str(err))
    for url in gone:
        console.print(shown(f"logged out of {url}"), highlight=False)
    if gone:
        console.print(
            "the forgotten tokens stay valid until they expire (their exp): keep them secret",
            highlight=False,
        )
    if not gone:
        console.print("no stored login to forget", highlight=False)


def whoami(factory: FactoryOption, json_output: JsonOption = False) -> None:
    """Who the remote factory takes you to be (`GET /api/whoami`)."""
    me = _remote(factory, "/api/whoami")
    if json_output:
        print_json(me)
        return
    roles = ", ".join(me.get("roles", [])) or "no roles"
    console.print(
        shown(f"{me.get('actor')} ({me.get('name')}): {roles}"), highlight=False, soft_wrap=True
    )


@remote_app.command("runs")
def remote_runs(
    factory: FactoryOption,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many runs.")] = 50,
    json_output: JsonOption = False,
) -> None:
    """The remote factory's latest runs (`GET /api/runs`), with your login."""
    runs = _remote(factory, "/api/runs", limit=limit)
    if json_output:
        print_json(runs)
        return
    table = Table("run", "repository", "state", "kind", "sponsor", "reason")
    for run in runs:
        table.add_row(
            *(shown(str(run.get(key, ""))) for key in ("id", "repository", "state", "kind")),
            shown(str(run.get("sponsor", ""))),
            shown(str(run.get("reason", ""))[:80]),
        )
    console.print(table)


def _remote(factory: str, path: str, **params: Any) -> Any:
    from codefactory.web.auth_client import LoginFailed, bearer_get, factory_url

    try:
        credentials = _store().get(factory)
        url = factory_url(factory)
    except LoginFailed as err:
        fail(str(err))
    if credentials is None:
        fail(f"not logged in to {url}: run `codefactory login --factory {url}`")
    if credentials.expired():
        fail(f"your login to {url} has expired: run `codefactory login --factory {url}`")
    import httpx

    try:
        response = bearer_get(credentials, path, **params)
    except httpx.HTTPError as err:
        fail(f"cannot reach {url}: {err}")
    if response.status_code != 200:
        detail = _detail(response)
        hint = " (run `codefactory login` again)" if response.status_code == 401 else ""
        fail(f"{url} answered {response.status_code}: {detail}{hint}")
    return response.json()


def _detail(response: Any) -> str:
    try:
        return str(response.json().get("detail", ""))[:500]
    except ValueError:
        return str(response.text)[:200]


def _store() -> Any:
    from codefactory.config import user_config_dir
    from codefactory.web.auth_client import CredentialStore

    return CredentialStore(user_config_dir() / "credentials.json")
