"""`codefactory login --device`: OAuth 2.0 Device Authorization Grant (RFC 8628) for people who
use the CLI where no browser can reach a loopback listener (an ssh session, a jump host).

The factory names its identity provider and the CLI's client id in its protected resource
metadata (RFC 9728), as for the browser login. The provider must list a
`device_authorization_endpoint` in its discovery document (RFC 8628 §4). The CLI asks it for a
device code (§3.1, with a fresh `nonce`), shows the person the verification URI and user code
(§3.3), and polls the token endpoint (§3.4) every `interval` seconds (default 5), 5 s more
after each `slow_down` (§3.5), until the tokens come, the person denies (`access_denied`) or
the code expires (`expired_token`, or its `expires_in` passed). The ID token is checked exactly
as the browser login checks it (signature, `iss`, `aud`, `exp`, and the `nonce` sent: an
identity provider must echo it, as OpenID Connect Core §3.1.2.1 asks of a code flow), and kept
in the same credentials file.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from codefactory.web.auth_client import (
    Credentials,
    LoginFailed,
    discover,
)

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
DEFAULT_INTERVAL_S = 5
"""RFC 8628 §3.2: the polling interval when the provider names none."""
SLOW_DOWN_STEP_S = 5
"""RFC 8628 §3.5: `slow_down` adds 5 seconds to the interval, for this and later polls."""
NO_DEVICE_GRANT = (
    "the identity provider offers no device authorization grant (RFC 8628); use the browser login"
)


@dataclass(frozen=True, kw_only=True)
class DeviceCode:
    """What the person needs (RFC 8628 §3.2): where to go and which code to type."""

    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_in: int
    """Seconds the codes stay valid."""
    interval: int
    """Seconds to wait between polls."""


def device_login(
    factory: str,
    *,
    show: Callable[[DeviceCode], None],
    client_secret: str | None = None,
    timeout_s: float = 300.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Credentials:
    """Log in to `factory`'s identity provider with the device grant; `show(code)` tells the
    person where to approve. Waits at most `timeout_s` seconds (and never past the code's
    `expires_in`); `sleep(seconds)` is the wait between polls. Raises `LoginFailed` naming the
    step that failed: no device endpoint, the provider's refusal, `access_denied`,
    `expired_token`, or an ID token that fails the browser login's checks."""
    found = discover(factory)
    client_id, metadata = found.client_id, found.metadata
    endpoint = metadata.get("device_authorization_endpoint")
    if not isinstance(endpoint, str) or not endpoint:
        raise LoginFailed(NO_DEVICE_GRANT)
    client = {"client_id": client_id}
    if client_secret:
        client["client_secret"] = client_secret
    nonce = secrets.token_urlsafe(32)
    status, answer = _post(endpoint, {**client, "scope": found.scope, "nonce": nonce})
    if status != 200:
        raise LoginFailed(f"the device authorization endpoint refused: {_error_of(answer)}")
    device_code, code = _device_code_of(answer)
    show(code)
    tokens = _poll(
        str(metadata["token_endpoint"]),
        {**client, "grant_type": DEVICE_CODE_GRANT, "device_code": device_code},
        interval_s=code.interval,
        wait_s=min(float(code.expires_in), timeout_s),
        sleep=sleep,
    )
    return found.credentials(tokens, nonce)


def _device_code_of(answer: dict[str, Any]) -> tuple[str, DeviceCode]:
    """The device code and what the person sees, from a §3.2 response; `LoginFailed` if a
    required field is missing or of the wrong type."""
    fields = ("device_code", "user_code", "verification_uri")
    missing = [f for f in fields if not isinstance(answer.get(f), str) or not answer[f]]
    if missing:
        raise LoginFailed(f"the device authorization response lacks {', '.join(missing)}")
    complete = answer.get("verification_uri_complete")
    try:
        expires_in = int(answer.get("expires_in", 0))
        interval = int(answer.get("interval") or DEFAULT_INTERVAL_S)
    except (TypeError, ValueError) as err:
        raise LoginFailed(f"the device authorization response is malformed: {err}") from err
    if expires_in <= 0:
        raise LoginFailed("the device authorization response has no positive expires_in")
    return str(answer["device_code"]), DeviceCode(
        user_code=str(answer["user_code"]),
        verification_uri=str(answer["verification_uri"]),
        verification_uri_complete=str(complete) if isinstance(complete, str) else None,
        expires_in=expires_in,
        interval=max(interval, 1),
    )


def _poll(
    token_endpoint: str,
    form: dict[str, str],
    *,
    interval_s: int,
    wait_s: float,
    sleep: Callable[[float], None],
) -> dict[str, Any]:
    """Poll the token endpoint (RFC 8628 §3.4, §3.5) until it answers the tokens."""
    deadline = time.monotonic() + wait_s
    interval = interval_s
    while True:
        sleep(interval)
        if time.monotonic() > deadline:
            raise LoginFailed(
                f"the login was not approved within {wait_s:.0f} s (the device code expired): "
                "run `codefactory login --device` again"
            )
        status, answer = _post(token_endpoint, form)
        if status == 200:
            return answer
        error = answer.get("error")
        if error == "authorization_pending":
            continue
        if error == "slow_down":
            interval += SLOW_DOWN_STEP_S
            continue
        if error == "access_denied":
            raise LoginFailed("the login was denied at the identity provider (access_denied)")
        if error == "expired_token":
            raise LoginFailed(
                "the device code expired before the login was approved (expired_token): "
                "run `codefactory login --device` again"
            )
        raise LoginFailed(f"the token endpoint refused the device code: {_error_of(answer)}")


def _post(url: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
    try:
        response = httpx.post(url, data=form, timeout=15, headers={"Accept": "application/json"})
        document = response.json()
    except (httpx.HTTPError, ValueError) as err:
        raise LoginFailed(f"{url} failed: {err}") from err
    if not isinstance(document, dict):
        raise LoginFailed(f"{url} answered {response.status_code} without a JSON object")
    return response.status_code, document


def _error_of(answer: dict[str, Any]) -> str:
    error = str(answer.get("error") or "no error code")
    description = answer.get("error_description")
    return f"{error} {description}"[:300] if description else error[:300]
