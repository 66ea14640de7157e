"""A real OpenID Connect provider that offers the device authorization grant (RFC 8628), for
the tests of `codefactory login --device`: `oidc-provider-mock`'s own Flask app, with authlib's
server-side `DeviceAuthorizationEndpoint` and `DeviceCodeGrant` registered on the mock's
`AuthorizationServer`, and a verification page the test "person" completes over HTTP.

Run as `python -m tests.device_provider --port N [--interval S]`. What it adds to the mock:

- `POST /oauth2/device_authorization` (RFC 8628 §3.1): a device code, a user code, and
  `verification_uri(_complete)`; a `nonce` form field is kept and put into the ID token, as the
  authorization code flow does (OpenID Connect Core §3.1.2.1).
- `device_authorization_endpoint` in `/.well-known/openid-configuration` (RFC 8628 §4).
- `POST /oauth2/token` with `grant_type=urn:ietf:params:oauth:grant-type:device_code` (§3.4):
  `authorization_pending` until the person answers, `slow_down` for a poll sooner than the
  device code's interval since the previous one (the interval then grows by 5 s, §3.5),
  `access_denied`, `expired_token`, or the tokens with an ID token (RS256, the mock's key).
- `GET|POST /device` (§3.3): the verification page; the form takes `user_code`, `sub` and
  `action=allow|deny`.
- `POST /device/expire` (`user_code`): a test control, like the mock's `PUT /users/<sub>`,
  that ends a device code's lifetime now.

The other grants and endpoints are the mock's, unchanged; its `PUT /users/<sub>` claims are
merged into device-flow ID tokens too (so a test can give a subject a wrong `nonce` or `aud`).
"""

from __future__ import annotations

import argparse
import html
import os
import threading
import time
from datetime import timedelta
from typing import Any

import flask
from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc8628 import (
    DEVICE_CODE_GRANT_TYPE,
    DeviceAuthorizationEndpoint,
    DeviceCodeGrant,
    DeviceCredentialDict,
)

SLOW_DOWN_STEP_S = 5
"""RFC 8628 §3.5: after `slow_down` the interval grows by 5 seconds."""


class DeviceCredential(DeviceCredentialDict):
    """A device code's record: the RFC 8628 fields, the client, the scope and the nonce."""

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> None:
        return None


class Devices:
    """The provider's device codes, the people's answers, and the polling state."""

    def __init__(self, interval_s: int) -> None:
        self.interval_s = interval_s
        self.lock = threading.Lock()
        self.by_device_code: dict[str, DeviceCredential] = {}
        self.answers: dict[str, tuple[Any, bool]] = {}
        self.last_poll: dict[str, float] = {}
        self.interval: dict[str, int] = {}

    def by_user_code(self, user_code: str) -> DeviceCredential | None:
        for credential in self.by_device_code.values():
            if credential["user_code"] == user_code:
                return credential
        return None


def device_app(interval_s: int) -> flask.Flask:
    """The mock's app with the device authorization grant (see the module docstring)."""
    import oidc_provider_mock
    from oidc_provider_mock import _app as mock
    from oidc_provider_mock._storage import Client, User, storage

    # The mock's clients take the grants it lists; this process's clients take the device one.
    Client.GRANT_TYPES_SUPPORTED = (*Client.GRANT_TYPES_SUPPORTED, DEVICE_CODE_GRANT_TYPE)
    devices = Devices(interval_s)
    app = oidc_provider_mock.app(access_token_max_age=timedelta(hours=1))

    Endpoint, Grant, DeviceOpenId = _server_parts(devices, mock.OpenIDCode)
    registered: list[AuthorizationServer] = []

    @app.before_request
    def register_device_grant() -> None:
        server = flask.g._authlib_authorization_server
        if not registered:
            server.register_endpoint(Endpoint)
            server.register_grant(
                Grant, [DeviceOpenId(require_nonce=False, token_max_age=timedelta(hours=1))]
            )
            registered.append(server)

    @app.post("/oauth2/device_authorization")
    def device_authorization() -> Any:
        return registered[0].create_endpoint_response("device_authorization")

    mock_token = app.view_functions["oidc-provider-mock.issue_token"]

    def issue_token() -> Any:
        if flask.request.form.get("grant_type") == DEVICE_CODE_GRANT_TYPE:
            return registered[0].create_token_response()
        return mock_token()

    app.view_functions["oidc-provider-mock.issue_token"] = issue_token

    mock_discovery = app.view_functions["oidc-provider-mock.openid_config"]

    def discovery() -> Any:
        document = mock_discovery().get_json()
        document["device_authorization_endpoint"] = flask.url_for(
            "device_authorization", _external=True
        )
        document["grant_types_supported"] = list(Client.GRANT_TYPES_SUPPORTED)
        return flask.jsonify(document)

    app.view_functions["oidc-provider-mock.openid_config"] = discovery

    _verification_routes(app, devices, storage, User)
    return app


def _server_parts(devices: Devices, open_id_code: Any) -> tuple[Any, Any, Any]:
    """authlib's device endpoint, device grant and an OpenID extension, on `devices`."""
    interval_s = devices.interval_s

    class Endpoint(DeviceAuthorizationEndpoint):  # type: ignore[misc]
        INTERVAL = interval_s

        def get_verification_uri(self) -> str:
            return flask.url_for("device_verification", _external=True)

        def save_device_credential(self, client_id: str, scope: str, data: dict[str, Any]) -> None:
            credential = DeviceCredential(
                client_id=client_id,
                scope=scope,
                nonce=flask.request.form.get("nonce"),
                expires_at=time.time() + data["expires_in"],
                **data,
            )
            with devices.lock:
                devices.by_device_code[data["device_code"]] = credential
                devices.interval[data["device_code"]] = interval_s

    class Grant(DeviceCodeGrant):  # type: ignore[misc]
        def query_device_credential(self, device_code: str) -> DeviceCredential | None:
            return devices.by_device_code.get(device_code)

        def query_user_grant(self, user_code: str) -> tuple[Any, bool] | None:
            return devices.answers.get(user_code)

        def should_slow_down(self, credential: DeviceCredential) -> bool:
            code = credential["device_code"]
            now = time.monotonic()
            with devices.lock:
                previous = devices.last_poll.get(code)
                devices.last_poll[code] = now
                if previous is not None and now - previous < devices.interval[code] - 0.05:
                    devices.interval[code] += SLOW_DOWN_STEP_S
                    return True
            return False

    class DeviceOpenId(open_id_code):  # type: ignore[misc]
        """The mock's ID token, for the device grant: its nonce is the device code's."""

        def __call__(self, grant: Any) -> None:
            grant.register_hook("after_create_token_response", self.process_token)

        def process_token(self, grant: Any, response: Any) -> Any:
            grant.request.authorization_code = grant.request.credential
            return super().process_token(grant, response)

    return Endpoint, Grant, DeviceOpenId


def _verification_routes(app: flask.Flask, devices: Devices, storage: Any, user_type: Any) -> None:
    """The verification page (RFC 8628 §3.3) and the test control `POST /device/expire`."""

    @app.route("/device", methods=["GET", "POST"], endpoint="device_verification")
    def verification() -> Any:
        user_code = flask.request.values.get("user_code", "").strip().upper()
        credential = devices.by_user_code(user_code)
        if credential is None or credential.is_expired():
            return _page(f"unknown or expired code {user_code!r}"), 400
        if flask.request.method == "GET":
            return _page(
                f"Sign in to let {credential['client_id']} use your account.",
                form=user_code,
            )
        sub = flask.request.form.get("sub", "")
        if not sub:
            return _page("no subject given", form=user_code), 400
        user = storage.get_user(sub)
        if user is None:
            user = user_type(sub=sub, claims={"email": sub})
            storage.store_user(user)
        allowed = flask.request.form.get("action", "allow") == "allow"
        devices.answers[user_code] = (user, allowed)
        return _page("Done: you may return to your device.")

    @app.post("/device/expire")
    def expire() -> Any:
        credential = devices.by_user_code(flask.request.form.get("user_code", ""))
        if credential is None:
            return "", 404
        credential["expires_at"] = time.time() - 1
        return "", 204


def _page(text: str, *, form: str | None = None) -> str:
    body = f"<!doctype html><p>{html.escape(text)}</p>"
    if form is not None:
        body += (
            f'<form method="post"><input type="hidden" name="user_code" '
            f'value="{html.escape(form)}"><input name="sub">'
            '<button name="action" value="allow">Allow</button>'
            '<button name="action" value="deny">Deny</button></form>'
        )
    return body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--interval", type=int, default=5, help="seconds between polls")
    args = parser.parse_args()
    os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"
    import uvicorn

    uvicorn.run(
        device_app(args.interval),
        interface="wsgi",
        host=args.host,
        port=args.port,
        log_config=None,
    )


if __name__ == "__main__":
    main()
