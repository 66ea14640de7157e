"""The server under the app (uvicorn with `web.limits`) on a real socket: connections that
never finish their headers or body are closed on time and cannot crowd out a real caller."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx

from codefactory.config import Settings
from codefactory.factory import build_factory
from codefactory.web.app import create_app
from codefactory.web.settings import ServerLimits
from tests.oidc_helpers import live_server

LIMITS = ServerLimits(header_timeout_s=0.5, body_timeout_s=0.5, keep_alive_s=1, max_connections=20)


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    return sock


def closed_by_server(sock: socket.socket, within_s: float) -> bool:
    """Whether the server closes `sock` within `within_s` (reading past any answer)."""
    sock.settimeout(within_s)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return True


def test_idle_and_slow_connections_are_closed_and_never_exhaust_the_server(
    tmp_path: Path,
) -> None:
    app = create_app(build_factory(Settings(data_dir=tmp_path / "data")))
    with live_server(app, LIMITS) as url:
        silent = [connect(url) for _ in range(25)]
        partial = [connect(url) for _ in range(25)]
        for sock in partial:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        time.sleep(0.2)

        started = time.monotonic()
        answer = httpx.get(f"{url}/healthz", timeout=5)
        assert answer.status_code == 200 and time.monotonic() - started < 0.5

        slow_body = connect(url)
        slow_body.sendall(
            b"POST /webhooks/github HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
        )
        kept_alive = connect(url)
        kept_alive.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")

        started = time.monotonic()
        for sock in [*silent, *partial, slow_body, kept_alive]:
            assert closed_by_server(sock, within_s=3), "a connection outlived its deadline"
            sock.close()
        assert time.monotonic() - started < 3

        assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
