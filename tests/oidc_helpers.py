"""A real OpenID Connect provider for tests: `oidc-provider-mock` (PyPI) started once per
session as its own process on 127.0.0.1, and the browser's part of its login.

The provider signs ID tokens (RS256) for whichever subject the "browser" types into its
authorization form; claims set with `PUT /users/<sub>` are merged into that subject's ID
token last, so a test can give one subject an expired `exp`, another `aud` or a wrong
`nonce` and watch the factory refuse them. Any client id works (no registration).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
import uvicorn

from codefactory.web.server import server_config
from codefactory.web.settings import ServerLimits
from tests.directory_helpers import person, standard_people, write_directory

CLIENT_ID = "codefactory"
CLIENT_SECRET = "test-secret"  # the provider takes any secret, and none at all never
REDIRECT = "http://127.0.0.1:9/callback"  # never reached: the test reads the Location


@dataclass(frozen=True)
class OidcProvider:
    """A running provider: its issuer URL (`http://127.0.0.1:<port>`)."""

    issuer: str

    def subject(self, sub: str) -> str:
        """The directory's OIDC identity of `sub`: `<issuer>#<sub>`."""
        return f"{self.issuer}#{sub}"

    def set_claims(self, sub: str, claims: dict[str, Any]) -> None:
        """Claims merged into `sub`'s tokens (the provider's `PUT /users/<sub>`)."""
        httpx.put(f"{self.issuer}/users/{sub}", json=claims, timeout=10).raise_for_status()

    def id_token(self, sub: str, *, client_id: str = CLIENT_ID, nonce: str = "n") -> str:
        """An ID token for `sub`, through the real authorization code flow with PKCE."""
        verifier = "v" * 64
        code = self.authorize(sub, client_id=client_id, nonce=nonce, verifier=verifier)
        answer = httpx.post(
            f"{self.issuer}/oauth2/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT,
                "client_id": client_id,
                "client_secret": CLIENT_SECRET,
                "code_verifier": verifier,
            },
            timeout=10,
        )
        answer.raise_for_status()
        return str(answer.json()["id_token"])

    def authorize(
        self, sub: str, *, client_id: str = CLIENT_ID, nonce: str = "n", verifier: str
    ) -> str:
        """The browser's part: open the authorization page, submit `sub`; returns the code."""
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        query = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT,
            "scope": "openid email profile",
            "state": "s",
            "nonce": nonce,
            "code_challenge": challenge.rstrip(b"=").decode(),
            "code_challenge_method": "S256",
        }
        location = submit_authorization(f"{self.issuer}/oauth2/authorize?{urlencode(query)}", sub)
        return parse_qs(urlsplit(location).query)["code"][0]


def submit_authorization(url: str, sub: str) -> str:
    """Play the person at the provider's authorization page `url`: load it, sign in as `sub`;
    returns where the provider redirects the browser (the client's redirect URI + code)."""
    with httpx.Client(timeout=10) as http:
        page = http.get(url)
        assert page.status_code == 200, page.text[:500]
        answer = http.post(url, data={"sub": sub})
    assert answer.status_code == 302, answer.text[:500]
    return str(answer.headers["location"])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    """One `oidc-provider-mock` process for the whole session, on a free 127.0.0.1 port."""
    port = free_port()
    log = tmp_path_factory.mktemp("oidc") / "provider.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "oidc_provider_mock", "--host", "127.0.0.1", "--port",
             str(port)],
            stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )  # fmt: skip
    issuer = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(issuer, process, log)
        yield OidcProvider(issuer=issuer)
    finally:
        process.terminate()
        process.wait(timeout=10)


def _wait_until_up(issuer: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"oidc-provider-mock exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=1).is_success:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    pytest.fail(f"oidc-provider-mock did not start: {log.read_text()[-2000:]}")


def web_env(provider: OidcProvider) -> dict[str, str]:
    """The environment that points a factory's web app at `provider`."""
    return {"CODEFACTORY_WEB__OIDC_ISSUER": provider.issuer}


def people_with_oidc(provider: OidcProvider, **subs: str) -> dict[str, dict[str, Any]]:
    """The standard people, plus an OIDC identity for each `person_id=sub` given (a person
    not among them is added as a reviewer)."""
    people = standard_people()
    for person_id, sub in subs.items():
        entry = people.get(person_id) or person(person_id.title(), roles=["reviewer"])
        identities = dict(entry.get("identities", {}))
        identities["oidc"] = [provider.subject(sub)]
        people[person_id] = {**entry, "identities": identities}
    return people


def directory_with_oidc(folder: Path, provider: OidcProvider, **subs: str) -> Path:
    """A directory file in `folder` with `people_with_oidc(provider, **subs)`."""
    return write_directory(folder / "directory.toml", people_with_oidc(provider, **subs))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def as_json(response: httpx.Response) -> Any:
    return json.loads(response.text)


WEB_PERSON = "priya.shah"
WEB_SUB = "priya"


def oidc_settings(provider: OidcProvider, folder: Path, **web: Any) -> dict[str, Any]:
    """Settings fields (for `Settings(**...)`) that put the web app behind `provider`, with a
    directory in `folder` where `priya.shah` is the provider's subject `priya`."""
    directory = directory_with_oidc(folder, provider, **{WEB_PERSON: WEB_SUB})
    return {
        "identity": {"directory_file": directory},
        "web": {"oidc_issuer": provider.issuer, "oidc_client_secret": CLIENT_SECRET, **web},
    }


_TOKENS: dict[tuple[str, str], str] = {}


def web_headers(provider: OidcProvider, sub: str = WEB_SUB) -> dict[str, str]:
    """`Authorization: Bearer <ID token of sub>`, one login per subject per session."""
    key = (provider.issuer, sub)
    if key not in _TOKENS:
        _TOKENS[key] = provider.id_token(sub)
    return bearer(_TOKENS[key])


@contextmanager
def live_server(
    app: Any, limits: ServerLimits | None = None, trusted_proxies: tuple[str, ...] = ()
) -> Iterator[str]:
    """Serve `app` on a free 127.0.0.1 port as `codefactory serve` does (uvicorn with the
    factory's limits and trusted proxies) in a thread; yields its base URL."""
    port = free_port()
    config = server_config(
        app,
        host="127.0.0.1",
        port=port,
        limits=limits or ServerLimits(),
        trusted_proxies=trusted_proxies,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def oidc_env(provider: OidcProvider, folder: Path) -> dict[str, str]:
    """`oidc_settings` as environment variables, for the CLI as a subprocess."""
    fields = oidc_settings(provider, folder)
    return {
        "CODEFACTORY_IDENTITY__DIRECTORY_FILE": str(fields["identity"]["directory_file"]),
        "CODEFACTORY_WEB__OIDC_ISSUER": provider.issuer,
        "CODEFACTORY_WEB__OIDC_CLIENT_SECRET": CLIENT_SECRET,
    }
