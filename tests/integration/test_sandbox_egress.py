"""Egress: no network by default; allowed hosts only through the host-side proxy; every
attempt, allowed or denied, recorded with host, port, phase and run, and audited. The proxy
itself is driven over its real Unix socket: address screening after resolution, literal
spellings, one request per plain-HTTP connection with a matching Host, socket ownership."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from codefactory.config import Settings
from codefactory.factory import build_factory
from codefactory.sandbox.bubblewrap import BubblewrapSandbox
from codefactory.sandbox.egress import EgressAttempt, EgressPolicy, host_addresses
from codefactory.sandbox.port import Phase
from codefactory.sandbox.proxy import EgressProxy
from codefactory.sandbox.settings import EgressSettings, ImageSettings, SandboxSettings
from tests.conftest import make_repo
from tests.egress_upstream import Upstream

needs_bwrap = pytest.mark.usefixtures("bwrap_available")

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


@needs_bwrap
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


@needs_bwrap
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


@needs_bwrap
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


# --- the proxy itself, over its real Unix socket -----------------------------------------


def exchange(path: Path, data: bytes, *, end_input: bool = False) -> bytes:
    """Send `data` on a new connection to the channel's socket; the whole reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(10)
        client.connect(str(path))
        client.sendall(data)
        if end_input:
            client.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := client.recv(65536):
            reply += chunk
    return reply


def through_proxy(
    policy: EgressPolicy, *requests: bytes, end_input: bool = False
) -> tuple[list[bytes], list[EgressAttempt]]:
    """Each request on its own connection to a fresh channel; the replies and the attempts."""
    proxy = EgressProxy()
    channel = proxy.open(run_id="run-proxy", phase="engine", policy=policy)
    try:
        replies = [exchange(channel.path, r, end_input=end_input) for r in requests]
    finally:
        attempts = proxy.close(channel)
    return replies, attempts


def mapped(port: int, *allow: str) -> EgressPolicy:
    return EgressPolicy(allow=("index.test", *allow), resolve={"index.test": f"127.0.0.1:{port}"})


def status(reply: bytes) -> str:
    return reply.split(b"\r\n", 1)[0].decode()


def test_only_a_name_the_operator_mapped_reaches_a_loopback_upstream(upstream: Upstream) -> None:
    port = upstream.port
    replies, attempts = through_proxy(
        mapped(port, f"localhost:{port}"),
        b"GET http://index.test/simple/ HTTP/1.1\r\nHost: index.test\r\n\r\n",
        b"GET http://localhost:%d/ HTTP/1.1\r\nHost: localhost:%d\r\n\r\n" % (port, port),
        b"CONNECT localhost:%d HTTP/1.1\r\n\r\n" % port,
    )
    assert replies[0].endswith(b"upstream saw GET /simple/ HTTP/1.1 for Host: index.test")
    assert [status(r) for r in replies[1:]] == ["HTTP/1.1 403 Forbidden"] * 2
    assert [(a.method, a.host, a.port, a.allowed) for a in attempts] == [
        ("GET", "index.test", 80, True),
        ("GET", "localhost", port, False),
        ("CONNECT", "localhost", port, False),
    ]
    assert attempts[0].reason == f"allowed by 'index.test'; mapped to 127.0.0.1:{port}"
    for attempt in attempts[1:]:
        assert attempt.reason.startswith(
            f"allowed by 'localhost:{port}', but localhost resolves only to refused addresses: "
        )
        assert "127.0.0.1 is a loopback address (127.0.0.0/8)" in attempt.reason
    assert b"resolves only to refused" in replies[1]
    assert upstream.connections == 1


LOOPBACK_SPELLINGS = [
    "127.1",
    "0x7f000001",
    "2130706433",
    "017700000001",
    "0x7f.1",
    "[::ffff:127.0.0.1]",
    "[0:0:0:0:0:ffff:7f00:1]",
]


@pytest.mark.parametrize("spelling", LOOPBACK_SPELLINGS)
def test_a_loopback_literal_in_any_spelling_is_refused_though_that_spelling_is_allowed(
    upstream: Upstream, spelling: str
) -> None:
    port = upstream.port
    target = f"{spelling}:{port}"
    replies, attempts = through_proxy(
        EgressPolicy(allow=(target,)),
        f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode(),
        f"GET http://{target}/ HTTP/1.1\r\nHost: {target}\r\n\r\n".encode(),
    )
    assert [status(r) for r in replies] == ["HTTP/1.1 403 Forbidden"] * 2
    assert [(a.host, a.port, a.allowed) for a in attempts] == [("127.0.0.1", port, False)] * 2
    assert {a.reason for a in attempts} == {
        f"allowed by {target!r} (requested as {spelling!r}), "
        "but 127.0.0.1 is a loopback address (127.0.0.0/8)"
    }
    assert upstream.connections == 0


@pytest.mark.parametrize(
    ("spelling", "reason"),
    [
        ("[::1]", "::1 is the loopback address (::1/128)"),
        ("[::127.0.0.1]", "embeds 127.0.0.1 (IPv4-compatible)"),
        ("[64:ff9b::7f00:1]", "embeds 127.0.0.1 (NAT64)"),
        ("0", "0.0.0.0 is an unspecified ('this network') address"),
        ("[::]", ":: is the unspecified address"),
        ("0xa9fea9fe", "169.254.169.254 is a link-local address"),
        ("10.1", "10.0.0.1 is a private address, RFC 1918"),
    ],
)
def test_other_local_literals_are_refused_with_their_rule(
    upstream: Upstream, spelling: str, reason: str
) -> None:
    target = f"{spelling}:{upstream.port}"
    replies, attempts = through_proxy(
        EgressPolicy(allow=(target,)), f"CONNECT {target} HTTP/1.1\r\n\r\n".encode()
    )
    assert status(replies[0]) == "HTTP/1.1 403 Forbidden"
    assert not attempts[0].allowed and reason in attempts[0].reason
    assert upstream.connections == 0


def own_address() -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    own = [
        n.network_address
        for n in host_addresses()
        if n.num_addresses == 1 and not n.network_address.is_link_local
    ]
    if not own:
        pytest.skip("this machine has no address besides loopback and link-local")
    return sorted(own, key=lambda a: a.version)[0]


def test_the_hosts_own_address_is_refused_though_a_server_answers_there() -> None:
    address = own_address()
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    with socket.create_server((str(address), 0), family=family) as server:
        port = server.getsockname()[1]
        socket.create_connection((str(address), port), timeout=5).close()  # it does answer
        literal = f"[{address}]" if address.version == 6 else str(address)
        replies, attempts = through_proxy(
            EgressPolicy(allow=(f"{literal}:{port}",)),
            f"CONNECT {literal}:{port} HTTP/1.1\r\n\r\n".encode(),
        )
    assert status(replies[0]) == "HTTP/1.1 403 Forbidden"
    assert attempts[0].reason == (
        f"allowed by '{literal}:{port}', but {address} is one of this host's own addresses"
    )


NEW_ADDRESSES = """
import json, subprocess, time
from codefactory.sandbox.egress import forbidden_address
probes = ["8.8.4.4", "9.9.9.77", "2001:4860:4860::8844", "2606:4700:99::7"]
before = [forbidden_address(a) for a in probes]
for command in (
    "ip link set lo up",
    "ip addr add 8.8.4.4/32 dev lo",
    "ip route add local 9.9.9.0/24 dev lo",
    "ip -6 addr add 2001:4860:4860::8844/128 dev lo",
    "ip -6 route add local 2606:4700:99::/64 dev lo",
):
    subprocess.run(command.split(), check=True)
time.sleep(1.1)
print(json.dumps([before, [forbidden_address(a) for a in probes]]))
"""


def test_an_address_added_to_the_host_counts_within_a_second() -> None:
    """In a network namespace of its own, so that the machine's addresses stay as they are."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("unshare or ip is not installed")
    done = subprocess.run(
        ["unshare", "--net", sys.executable, "-c", NEW_ADDRESSES],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0 and "unshare" in done.stderr:
        pytest.skip(f"cannot make a network namespace here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    before, after = json.loads(done.stdout)
    assert before == ["", "", "", ""]
    assert after == [
        "8.8.4.4 is one of this host's own addresses",
        "9.9.9.77 is one of this host's own addresses",
        "2001:4860:4860::8844 is one of this host's own addresses",
        "2606:4700:99::7 is one of this host's own addresses",
    ]


def test_a_plain_request_must_name_its_target_in_one_host_header(upstream: Upstream) -> None:
    port = upstream.port
    replies, attempts = through_proxy(
        mapped(port),
        b"GET http://index.test/ HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % port,
        b"GET http://index.test/ HTTP/1.1\r\n\r\n",
        b"GET http://index.test/ HTTP/1.1\r\nHost: index.test\r\nHost: other.test\r\n\r\n",
        b"GET http://index.test/old HTTP/1.0\r\n\r\n",
    )
    assert [status(r) for r in replies[:3]] == ["HTTP/1.1 403 Forbidden"] * 3
    assert b"does not name the request target index.test:80" in replies[0]
    assert replies[3].endswith(b"upstream saw GET /old HTTP/1.0 for Host: index.test")
    assert [(a.method, a.host, a.port, a.allowed) for a in attempts] == [
        ("GET", "index.test", 80, False),
        ("GET", "index.test", 80, False),
        ("GET", "index.test", 80, False),
        ("GET", "index.test", 80, True),
    ]
    assert [a.reason for a in attempts[:3]] == [
        f"the Host header '127.0.0.1:{port}' does not name the request target index.test:80",
        "no Host header in an HTTP/1.1 request",
        "2 Host headers in one request",
    ]
    assert upstream.connections == 1


def test_a_pipelined_second_request_never_reaches_the_upstream(upstream: Upstream) -> None:
    port = upstream.port
    pipelined = (
        b"GET http://index.test/first HTTP/1.1\r\nHost: index.test\r\n\r\n"
        b"GET http://other.test/second HTTP/1.1\r\nHost: other.test\r\n\r\n"
        b"GET /third HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % port
    )
    replies, attempts = through_proxy(mapped(port), pipelined)
    assert replies[0].count(b"HTTP/1.1 200") == 1
    assert replies[0].endswith(b"upstream saw GET /first HTTP/1.1 for Host: index.test")
    assert upstream.received.get(timeout=10) == (
        b"GET /first HTTP/1.1\r\nHost: index.test\r\nConnection: close\r\n\r\n"
    )
    assert [(a.host, a.allowed) for a in attempts] == [("index.test", True)]


def test_a_body_is_forwarded_to_its_content_length_and_nothing_after_it(
    upstream: Upstream,
) -> None:
    body = bytes(range(256)) * 1200  # several reads and writes
    request = (
        b"POST http://index.test/upload HTTP/1.1\r\nHost: index.test\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    )
    smuggled = b"GET http://index.test/x HTTP/1.1\r\nHost: other.test\r\n\r\n"
    replies, _ = through_proxy(mapped(upstream.port), request + body + smuggled)
    assert replies[0].endswith(b"upstream saw POST /upload HTTP/1.1 for Host: index.test")
    assert upstream.received.get(timeout=10) == (
        b"POST /upload HTTP/1.1\r\nHost: index.test\r\nContent-Length: %d\r\n"
        b"Connection: close\r\n\r\n" % len(body) + body
    )


def test_malformed_requests_get_400_are_recorded_and_the_channel_keeps_serving(
    upstream: Upstream,
) -> None:
    malformed = [
        b"CONNECT index.test:0 HTTP/1.1\r\n\r\n",
        b"CONNECT index.test:65536 HTTP/1.1\r\n\r\n",
        b"CONNECT index.test:https HTTP/1.1\r\n\r\n",
        b"CONNECT index.test: HTTP/1.1\r\n\r\n",
        b"CONNECT index.test:\xb3 HTTP/1.1\r\n\r\n",
        b"CONNECT ::1:443 HTTP/1.1\r\n\r\n",
        b"CONNECT index.test HTTP/1.1\r\n\r\n",
        b"POST http://index.test/ HTTP/1.1\r\nHost: index.test\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"GET http://user@index.test/ HTTP/1.1\r\nHost: index.test\r\n\r\n",
        b"GET http://index.test/ HTTP/1.1\r\nHost: index.test\nHost: other.test\r\n\r\n",
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n",
        b"GET http://index.test/ HTTP/1.1\r\n" + b"X-Pad: " + b"a" * 70_000 + b"\r\n\r\n",
    ]
    good = b"CONNECT index.test:443 HTTP/1.1\r\n\r\nGET /after HTTP/1.1\r\nHost: index.test\r\n\r\n"
    proxy = EgressProxy()
    channel = proxy.open(run_id="run-proxy", phase="engine", policy=mapped(upstream.port))
    try:
        replies = [exchange(channel.path, data) for data in malformed]
        replies.append(exchange(channel.path, b"GET http://index.te", end_input=True))
        replies.append(exchange(channel.path, good, end_input=True))
    finally:
        attempts = proxy.close(channel)
    assert [status(r) for r in replies[:-1]] == ["HTTP/1.1 400 Bad Request"] * (len(malformed) + 1)
    assert replies[-1].startswith(b"HTTP/1.1 200 Connection established\r\n\r\nHTTP/1.1 200 OK")
    assert len(attempts) == len(malformed) + 2
    assert not any(a.allowed for a in attempts[:-1]) and attempts[-1].allowed
    assert all(a.reason.startswith(("malformed", "a Transfer-Encoding")) for a in attempts[:-1])
    assert [a.method for a in attempts[:7]] == ["CONNECT"] * 7
    assert upstream.connections == 1


def test_a_channel_socket_is_private_to_this_user_by_default() -> None:
    proxy = EgressProxy()
    channel = proxy.open(run_id="r", phase="engine", policy=EgressPolicy(allow=("x.test",)))
    try:
        sock = channel.path.stat()
        assert stat.S_ISSOCK(sock.st_mode) and stat.S_IMODE(sock.st_mode) == 0o600
        assert sock.st_uid == os.geteuid()
        assert stat.S_IMODE(channel.path.parent.stat().st_mode) == 0o700
        # the proxy's folder may be crossed (channels of other owners), never listed
        assert stat.S_IMODE(channel.path.parent.parent.stat().st_mode) == 0o711
    finally:
        proxy.close(channel)
    assert not channel.path.parent.exists()


PROBE = """
import os, socket, sys
path = sys.argv[1]
try:
    socket.socket(socket.AF_UNIX).connect(path)
    print("connected")
except OSError as err:
    print(type(err).__name__)
try:
    os.listdir(os.path.dirname(path))
    print("listed")
except OSError as err:
    print(type(err).__name__)
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a socket to another user needs root")
def test_a_channel_socket_belongs_to_the_sandbox_user_who_may_reach_but_not_list_it() -> None:
    python = Path("/usr/bin/python3")
    if not python.exists():
        pytest.skip("no system python3 that another user may run")
    proxy = EgressProxy(socket_owner=(65534, 65534))
    channel = proxy.open(run_id="r", phase="engine", policy=EgressPolicy(allow=("x.test",)))
    try:
        sock = channel.path.stat()
        assert (sock.st_uid, sock.st_gid, stat.S_IMODE(sock.st_mode)) == (65534, 65534, 0o600)
        for folder in (channel.path.parent, channel.path.parent.parent):
            mode = folder.stat()
            assert (mode.st_uid, stat.S_IMODE(mode.st_mode)) == (0, 0o711)
        probes = {
            uid: subprocess.run(
                [str(python), "-c", PROBE, str(channel.path)],
                user=uid,
                group=uid,
                extra_groups=[],
                capture_output=True,
                text=True,
                timeout=30,
            ).stdout.split()
            for uid in (65534, 65533)
        }
    finally:
        proxy.close(channel)
    assert probes == {
        65534: ["connected", "PermissionError"],
        65533: ["PermissionError", "PermissionError"],
    }
