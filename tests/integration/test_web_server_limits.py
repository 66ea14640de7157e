"""The server under the app (uvicorn with `web.limits`) on a real socket: connections that
never finish their headers or body are closed on time and cannot crowd out a real caller."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from codefactory.config import Settings
from codefactory.factory import build_factory
from codefactory.web.app import create_app
from codefactory.web.settings import ServerLimits
from tests.oidc_helpers import live_server

LIMITS = ServerLimits(header_timeout_s=0.5, body_timeout_s=0.5, keep_alive_s=1, max_connections=20)


OPENED: list[socket.socket] = []
"""Every raw socket a test opened: closed after it even when an assertion failed first (a
socket left to the garbage collector fails the next test with a ResourceWarning)."""


@pytest.fixture(autouse=True)
def _close_sockets() -> Any:
    yield
    while OPENED:
        OPENED.pop().close()


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    OPENED.append(sock)
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
        assert answer.status_code == 200 and time.monotonic() - started < 2

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


def slow_body(url: str, source: str) -> socket.socket:
    """A connection from `source` that sends a webhook's head and one byte of its body."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=5, source_address=(source, 0))
    OPENED.append(sock)
    sock.sendall(
        b"POST /webhooks/github HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
    )
    return sock


def still_open(sock: socket.socket) -> bool:
    sock.settimeout(0.01)
    try:
        return sock.recv(1) != b""
    except TimeoutError:
        return True
    except OSError:
        return False


def open_count(socks: list[socket.socket], expected: int, *, within_s: float = 5) -> int:
    """How many of `socks` the server keeps open, once it has had up to `within_s` to shed
    down to `expected` (it sheds asynchronously; a loaded machine is slow to)."""
    deadline = time.monotonic() + within_s
    while (count := sum(still_open(sock) for sock in socks)) > expected:
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return count


def client_from(source: str) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=5)


def test_one_client_with_many_slow_bodies_sheds_its_own_connections(tmp_path: Path) -> None:
    limits = ServerLimits(
        header_timeout_s=10, body_timeout_s=10, max_connections=30,
        max_connections_per_client=12, min_rate_bytes_s=0,
    )  # fmt: skip
    app = create_app(build_factory(Settings(data_dir=tmp_path / "data")))
    with live_server(app, limits) as url:
        hog = [slow_body(url, "127.0.0.2") for _ in range(40)]
        others = [slow_body(url, source) for source in ("127.0.0.4", "127.0.0.5") for _ in range(9)]
        assert open_count(hog, 12) == 12  # its limit: it shed its own

        # the server is full (12 + 9 + 9 = 30): a new caller sheds one of the biggest holder's
        with client_from("127.0.0.3") as caller:
            started = time.monotonic()
            assert caller.get(f"{url}/healthz").status_code == 200
            assert time.monotonic() - started < 2
        assert open_count(hog, 11) == 11
        assert all(still_open(sock) for sock in others), "another client's connection was shed"
        for sock in [*hog, *others]:
            sock.close()


def test_connections_sending_slower_than_the_minimum_rate_are_closed(tmp_path: Path) -> None:
    limits = ServerLimits(
        header_timeout_s=10, body_timeout_s=10, min_rate_bytes_s=200, rate_grace_s=0.5
    )
    app = create_app(build_factory(Settings(data_dir=tmp_path / "data")))
    with live_server(app, limits) as url:
        bodies = [slow_body(url, "127.0.0.2") for _ in range(20)]
        heads = [connect(url) for _ in range(10)]
        for sock in heads:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        started = time.monotonic()

        # a real sender, a bit slow but well above the rate, is answered meanwhile
        host, port = url.removeprefix("http://").split(":")
        honest = socket.create_connection((host, int(port)), timeout=5)
        body = b'{"x": "' + b"a" * 1990 + b'"}'
        honest.sendall(
            b"POST /webhooks/github HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
        )
        for part in range(0, len(body), 500):
            honest.sendall(body[part : part + 500])
            time.sleep(0.2)
        answer = honest.recv(100)
        assert answer.startswith(b"HTTP/1.1 "), answer
        honest.close()

        for sock in [*bodies, *heads]:
            sock.sendall(b" ")  # a byte now and then keeps nobody in
        for sock in [*bodies, *heads]:
            assert closed_by_server(sock, within_s=3), "a slow sender outlived the minimum rate"
            sock.close()
        assert time.monotonic() - started < 4  # the deadlines (10 s) were not needed


async def echo_client(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An ASGI app answering with the client address and scheme the server gave it."""
    if scope["type"] != "http":
        return
    text = f"{scope['client'][0]} {scope['scheme']}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": text})


FORWARDED = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}


def test_forwarded_headers_count_only_from_a_trusted_proxy(tmp_path: Path) -> None:
    with live_server(echo_client) as url:
        assert httpx.get(url, headers=FORWARDED).text == "127.0.0.1 http"
    with live_server(echo_client, trusted_proxies=("10.0.0.0/8",)) as url:
        assert httpx.get(url, headers=FORWARDED).text == "127.0.0.1 http"
    few = ServerLimits(max_connections_per_client=3, min_rate_bytes_s=0)
    with live_server(echo_client, few, trusted_proxies=("127.0.0.1",)) as url:
        assert httpx.get(url, headers=FORWARDED).text == "203.0.113.9 https"
        # the proxy speaks for many clients: its connections are not one client's share
        proxied = [slow_body(url, "127.0.0.1") for _ in range(6)]
        time.sleep(0.3)
        assert all(still_open(sock) for sock in proxied)

    app = create_app(build_factory(Settings(data_dir=tmp_path / "data")))
    with live_server(app) as url:
        metadata = httpx.get(f"{url}/.well-known/oauth-protected-resource", headers=FORWARDED)
        assert metadata.json()["resource"] == url
