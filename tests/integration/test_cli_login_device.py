"""`codefactory login --device` (RFC 8628) against a live factory and a real OIDC provider that
offers the device grant (`tests/device_provider.py`: oidc-provider-mock with authlib's device
endpoint and grant): the person approves at the verification page over HTTP, the CLI polls,
checks the ID token as the browser login does, and keeps it."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import webbrowser
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner, Result

from codefactory.cli import app
from codefactory.config import Settings
from codefactory.factory import build_factory
from codefactory.web.app import create_app
from codefactory.web.auth_client import LoginFailed
from codefactory.web.device_flow import NO_DEVICE_GRANT, DeviceCode, device_login
from tests.oidc_helpers import (
    CLIENT_SECRET,
    OidcProvider,
    _wait_until_up,
    free_port,
    live_server,
    oidc_settings,
)


@pytest.fixture(scope="session")
def device_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    """One provider with the device grant (interval 1 s) for the session, on 127.0.0.1."""
    port = free_port()
    log = tmp_path_factory.mktemp("oidc-device") / "provider.log"
    root = Path(__file__).resolve().parents[2]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.device_provider", "--port", str(port),
             "--interval", "1"],
            stdout=out, stderr=subprocess.STDOUT, cwd=root,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )  # fmt: skip
    issuer = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(issuer, process, log)
        yield OidcProvider(issuer=issuer)
    finally:
        process.terminate()
        process.wait(timeout=10)


def factory_at(tmp_path: Path, provider: OidcProvider) -> Iterator[str]:
    extra = oidc_settings(provider, tmp_path / "people")
    factory = build_factory(Settings(data_dir=tmp_path / "data", **extra))
    with live_server(create_app(factory)) as url:
        yield url


@pytest.fixture
def factory_url(tmp_path: Path, device_provider: OidcProvider) -> Iterator[str]:
    yield from factory_at(tmp_path, device_provider)


def answer(code: DeviceCode, sub: str, action: str = "allow") -> None:
    """The person at the verification page (RFC 8628 §3.3): type the code, sign in, answer."""
    with httpx.Client(timeout=10) as http:
        page = http.get(code.verification_uri, params={"user_code": code.user_code})
        assert page.status_code == 200, page.text[:300]
        done = http.post(
            code.verification_uri, data={"user_code": code.user_code, "sub": sub, "action": action}
        )
        assert done.status_code == 200, done.text[:300]


def no_wait(seconds: float) -> None:
    """The wait before the first poll, skipped: the person has already answered by then, and
    the provider only counts a poll too soon after another (the waits are tested below)."""


def login_as(factory_url: str, sub: str, action: str = "allow") -> None:
    device_login(
        factory_url,
        show=lambda code: answer(code, sub, action),
        client_secret=CLIENT_SECRET,
        timeout_s=20,
        sleep=no_wait,
    )


class PersonWithTheCode(webbrowser.BaseBrowser):
    """The browser `codefactory login --device` opens at `verification_uri_complete`: the
    person signs in as `sub` and allows (in a thread, as a person would, later)."""

    def __init__(self, sub: str) -> None:
        super().__init__("test-device-person")
        self.sub = sub
        self.opened: list[str] = []

    def open(self, url: str, new: int = 0, autoraise: bool = True) -> bool:
        self.opened.append(url)

        def sign_in() -> None:
            with httpx.Client(timeout=10) as http:
                assert http.get(url).status_code == 200
                user_code = httpx.URL(url).params["user_code"]
                form = {"user_code": user_code, "sub": self.sub, "action": "allow"}
                assert http.post(url, data=form).status_code == 200

        threading.Thread(target=sign_in).start()
        return True


def cli(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(app, list(args), env=env)


def test_device_login_then_whoami_names_the_person(factory_url: str, tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CODEFACTORY_")}
    env = {**clean, "XDG_CONFIG_HOME": str(tmp_path / "config"), "NO_COLOR": "1",
           "CODEFACTORY_LOGIN_CLIENT_SECRET": CLIENT_SECRET}  # fmt: skip
    person = PersonWithTheCode("priya")
    webbrowser.register("test-device-person", None, person, preferred=True)
    try:
        logged_in = cli(env, "login", "--factory", factory_url, "--device", "--timeout", "20")
    finally:
        webbrowser._tryorder.remove("test-device-person")  # type: ignore[attr-defined]
    assert logged_in.exit_code == 0, logged_in.output
    assert "enter the code" in logged_in.stderr and "/device" in logged_in.stderr
    assert person.opened and "user_code=" in person.opened[0]
    assert "as priya" in logged_in.stdout

    stored = Path(env["XDG_CONFIG_HOME"]) / "codefactory" / "credentials.json"
    assert stored.stat().st_mode & 0o777 == 0o600
    me = cli(env, "whoami", "--factory", factory_url)
    assert me.exit_code == 0 and "user:priya.shah (Priya Shah)" in me.stdout, me.output


def test_a_denied_login_fails(factory_url: str) -> None:
    with pytest.raises(LoginFailed, match=r"denied .*\(access_denied\)"):
        login_as(factory_url, "priya", action="deny")


def test_an_expired_device_code_fails(factory_url: str, device_provider: OidcProvider) -> None:
    def expire(code: DeviceCode) -> None:
        issuer = device_provider.issuer
        httpx.post(f"{issuer}/device/expire", data={"user_code": code.user_code}).raise_for_status()

    with pytest.raises(LoginFailed, match=r"expired .*\(expired_token\)"):
        device_login(
            factory_url, show=expire, client_secret=CLIENT_SECRET, timeout_s=20, sleep=no_wait
        )


class Stop(Exception):
    pass


def test_slow_down_adds_five_seconds_to_every_later_poll(factory_url: str) -> None:
    """A client that polls too soon (this sleep does not wait) gets `slow_down` from the
    provider each time; the interval it asks for grows by 5 s each time (RFC 8628 §3.5)."""
    asked: list[float] = []

    def eager_sleep(seconds: float) -> None:
        asked.append(seconds)
        if len(asked) == 4:
            raise Stop

    with pytest.raises(Stop):
        device_login(
            factory_url, show=lambda code: None, client_secret=CLIENT_SECRET, sleep=eager_sleep
        )
    # poll 1: authorization_pending; polls 2 and 3 came too soon: slow_down each time
    assert asked == [1, 1, 6, 11]


def test_an_id_token_with_a_wrong_nonce_or_audience_is_refused(
    factory_url: str,
    device_provider: OidcProvider,
) -> None:
    device_provider.set_claims("replayer", {"nonce": "an-old-login"})
    with pytest.raises(LoginFailed, match="nonce is not this login's"):
        login_as(factory_url, "replayer")
    device_provider.set_claims("elsewhere", {"aud": "another-client"})
    with pytest.raises(LoginFailed, match="the ID token is refused"):
        login_as(factory_url, "elsewhere")


def test_a_provider_without_the_device_grant_is_named(
    tmp_path: Path, oidc_provider: OidcProvider
) -> None:
    for url in factory_at(tmp_path, oidc_provider):
        with pytest.raises(LoginFailed, match=r"offers no device authorization grant \(RFC 8628\)"):
            device_login(url, show=lambda code: None, client_secret=CLIENT_SECRET)
    assert "use the browser login" in NO_DEVICE_GRANT
