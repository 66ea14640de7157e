"""`codefactory login|whoami|remote runs|logout` against a live factory and the session's real
OIDC provider: the browser the CLI opens signs in at the provider, the CLI's loopback listener
gets the code, checks the state and the ID token, and keeps the token."""

from __future__ import annotations

import os
import threading
import webbrowser
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import Result
from typer.testing import CliRunner

from codefactory.cli import app
from codefactory.config import Settings
from codefactory.factory import build_factory
from codefactory.web.app import create_app
from codefactory.web.auth_client import LoginFailed, login
from tests.oidc_helpers import CLIENT_SECRET, OidcProvider, live_server, oidc_settings
from tests.oidc_helpers import submit_authorization as sign_in


@pytest.fixture
def factory_url(tmp_path: Path, oidc_provider: OidcProvider) -> Iterator[str]:
    extra = oidc_settings(oidc_provider, tmp_path / "people")
    factory = build_factory(Settings(data_dir=tmp_path / "data", **extra))
    with live_server(create_app(factory)) as url:
        yield url


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CODEFACTORY_")}
    return {**clean, "XDG_CONFIG_HOME": str(tmp_path / "config"), "NO_COLOR": "1",
            "CODEFACTORY_LOGIN_CLIENT_SECRET": CLIENT_SECRET}  # fmt: skip


class PersonAtTheBrowser(webbrowser.BaseBrowser):
    """The browser `codefactory login` opens: it signs in at the provider as `sub` and follows
    the redirect to the CLI's loopback listener (in a thread, as a person would, later)."""

    def __init__(self, sub: str) -> None:
        super().__init__("test-person")
        self.sub = sub
        self.callbacks: list[str] = []

    def open(self, url: str, new: int = 0, autoraise: bool = True) -> bool:
        def sign_in_and_return() -> None:
            callback = sign_in(url, self.sub)
            self.callbacks.append(callback)
            httpx.get(callback, timeout=10)

        threading.Thread(target=sign_in_and_return).start()
        return True


@pytest.fixture
def browser() -> Iterator[PersonAtTheBrowser]:
    person = PersonAtTheBrowser("priya")
    webbrowser.register("test-person", None, person, preferred=True)
    try:
        yield person
    finally:
        webbrowser._tryorder.remove("test-person")  # type: ignore[attr-defined]


def cli(env: dict[str, str], *args: str) -> Result:
    """The CLI in process (its start-up is seconds as a subprocess)."""
    return CliRunner().invoke(app, list(args), env=env)


def test_login_whoami_remote_runs_and_logout(
    factory_url: str, env: dict[str, str], browser: PersonAtTheBrowser
) -> None:
    logged_in = cli(env, "login", "--factory", factory_url, "--timeout", "20")
    assert logged_in.exit_code == 0, logged_in.output
    assert "logged in to" in logged_in.stdout and "as priya" in logged_in.stdout
    assert browser.callbacks[0].startswith("http://127.0.0.1:")
    assert "/callback?" in browser.callbacks[0]

    stored = Path(env["XDG_CONFIG_HOME"]) / "codefactory" / "credentials.json"
    assert stored.stat().st_mode & 0o777 == 0o600
    assert factory_url in stored.read_text()

    me = cli(env, "whoami", "--factory", factory_url)
    assert me.exit_code == 0 and "user:priya.shah (Priya Shah)" in me.stdout, me.output
    runs = cli(env, "remote", "runs", "--factory", factory_url, "--json")
    assert runs.exit_code == 0 and runs.stdout.strip() == "[]", runs.output

    assert "logged out of" in cli(env, "logout").stdout
    gone = cli(env, "whoami", "--factory", factory_url)
    assert gone.exit_code == 1 and "not logged in" in gone.stderr


def test_a_forged_redirect_or_a_bad_token_is_refused(
    factory_url: str, oidc_provider: OidcProvider
) -> None:
    def forge(url: str) -> None:
        redirect_uri = httpx.URL(url).params["redirect_uri"]
        threading.Thread(
            target=httpx.get, args=(f"{redirect_uri}?code=stolen&state=not-this-login",)
        ).start()

    with pytest.raises(LoginFailed, match="state is not this login's"):
        login(factory_url, open_browser=forge, client_secret=CLIENT_SECRET, timeout_s=10)

    oidc_provider.set_claims("replayer", {"nonce": "an-old-login"})

    def replay(url: str) -> None:
        threading.Thread(target=lambda: httpx.get(sign_in(url, "replayer"))).start()

    with pytest.raises(LoginFailed, match="nonce is not this login's"):
        login(factory_url, open_browser=replay, client_secret=CLIENT_SECRET, timeout_s=10)
