"""Egress: no network by default; allowed hosts only through the host-side proxy; every
attempt, allowed or denied, recorded with host, port, phase and run, and audited."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from codefactory.config import Settings
from codefactory.factory import build_factory
from codefactory.sandbox.bubblewrap import BubblewrapSandbox
from codefactory.sandbox.egress import EgressAttempt, EgressPolicy
from codefactory.sandbox.port import Phase
from codefactory.sandbox.settings import EgressSettings, ImageSettings, SandboxSettings
from tests.conftest import make_repo

pytestmark = pytest.mark.usefixtures("bwrap_available")

FETCH = """
import sys, urllib.request
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())
except Exception as err:
    print("failed:", err)
"""
TUNNEL = """
import socket, sys
s = socket.create_connection(("127.0.0.1", 3128), timeout=10)
s.sendall(b"CONNECT models.test:443 HTTP/1.1\\r\\nHost: models.test:443\\r\\n\\r\\n")
print(s.recv(100).decode().splitlines()[0])
s.sendall(b"GET /tunnel HTTP/1.0\\r\\nHost: models.test\\r\\n\\r\\n")
reply = b""
while chunk := s.recv(4096):
    reply += chunk
print(reply.decode().split("\\r\\n\\r\\n", 1)[1])
"""


class Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        body = f"hello from the allowed host, path {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def allowed_server() -> Iterator[int]:
    """An HTTP server on the host's loopback, standing in for an allowed host."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    make_repo(tmp_path / "repo", {"app.py": "print('hi')\n"})
    return tmp_path / "repo"


def test_allowed_hosts_are_reached_through_the_proxy_and_every_attempt_is_recorded(
    tmp_path: Path, repo: Path, allowed_server: int
) -> None:
    policy = EgressPolicy(
        allow=("models.test",), resolve={"models.test": f"127.0.0.1:{allowed_server}"}
    )
    sandbox = BubblewrapSandbox(tmp_path / "work", tmp_path / "cache", egress={"engine": policy})
    attempts: list[EgressAttempt] = []
    ws = sandbox.provision(repo=repo, commit="HEAD", run_id="run-egress", on_egress=attempts.append)
    try:
        fetched = ws.exec(["python3", "-c", FETCH, "http://models.test/v1"], phase=Phase.ENGINE)
        tunnel = ws.exec(["python3", "-c", TUNNEL], phase=Phase.ENGINE)
        denied = ws.exec(["python3", "-c", FETCH, "http://other.test/"], phase=Phase.ENGINE)
        in_checks = ws.exec(["python3", "-c", FETCH, "http://models.test/"], phase=Phase.CHECK)
    finally:
        ws.destroy()
    assert fetched.stdout.strip() == "hello from the allowed host, path /v1"
    assert tunnel.stdout.split("\n")[:2] == [
        "HTTP/1.1 200 Connection established",
        "hello from the allowed host, path /tunnel",
    ]
    assert "403" in denied.stdout
    assert "failed" in in_checks.stdout  # no proxy at all in a phase without hosts
    assert [(a.host, a.port, a.phase, a.allowed, a.method) for a in attempts] == [
        ("models.test", 80, "engine", True, "GET"),
        ("models.test", 443, "engine", True, "CONNECT"),
        ("other.test", 80, "engine", False, "GET"),
    ]
    assert {a.run_id for a in attempts} == {"run-egress"}
    assert "mapped to 127.0.0.1" in attempts[0].reason


def test_a_call_may_widen_the_allow_list_for_itself_only(
    tmp_path: Path, repo: Path, allowed_server: int
) -> None:
    policy = EgressPolicy(resolve={"models.test": f"127.0.0.1:{allowed_server}"})
    sandbox = BubblewrapSandbox(tmp_path / "work", tmp_path / "cache", egress={"engine": policy})
    ws = sandbox.provision(repo=repo, commit="HEAD", run_id="r")
    try:
        url = "http://models.test/"
        widened = ws.exec(
            ["python3", "-c", FETCH, url], phase=Phase.ENGINE, allow_hosts=["models.test"]
        )
        plain = ws.exec(["python3", "-c", FETCH, url], phase=Phase.ENGINE)
    finally:
        ws.destroy()
    assert widened.stdout.startswith("hello")
    assert plain.stdout.startswith("failed")


def test_egress_attempts_and_limit_hits_are_audited_for_the_run(
    tmp_path: Path, repo: Path, allowed_server: int
) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        sandbox=SandboxSettings(
            images=ImageSettings(enabled=False),
            egress=EgressSettings(
                engine_hosts=["models.test"],
                resolve={"models.test": f"127.0.0.1:{allowed_server}"},
            ),
        ),
    )
    factory = build_factory(settings)
    ws = factory.loop.sandbox.provision(repo=repo, commit="HEAD", run_id="run-audit")
    try:
        ws.exec(["python3", "-c", FETCH, "http://models.test/"], phase=Phase.ENGINE)
        ws.exec(["python3", "-c", FETCH, "http://evil.test/"], phase=Phase.ENGINE)
        ws.exec(["sleep", "5"], phase=Phase.CHECK, timeout_s=0.3)
    finally:
        ws.destroy()
    events = [(e.name, e.data) for e in factory.audit.events("run-audit")]
    assert [name for name, _ in events] == [
        "egress-attempted",
        "egress-attempted",
        "sandbox-limit-hit",
    ]
    assert events[0][1] | {"reason": ""} == {
        "host": "models.test",
        "port": 80,
        "phase": "engine",
        "allowed": True,
        "method": "GET",
        "reason": "",
    }
    assert events[1][1]["allowed"] is False and events[1][1]["host"] == "evil.test"
    assert events[2][1]["limit"] == "wall-clock" and events[2][1]["phase"] == "check"
    assert factory.audit.verify().ok
