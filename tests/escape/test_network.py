"""Ways out over the network: the internet, DNS, the host's loopback, abstract sockets, the
proxy asked for what policy does not allow."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from codefactory.sandbox.bubblewrap import BubblewrapWorkspace
from codefactory.sandbox.port import Phase
from tests.escape.conftest import Escape

CONNECT = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()
    print("connected")
except OSError as err:
    print(type(err).__name__, err)
"""
VIA_PROXY = """
import socket, sys
s = socket.create_connection(("127.0.0.1", 3128), timeout=5)
s.sendall(f"CONNECT {sys.argv[1]} HTTP/1.1\\r\\nHost: {sys.argv[1]}\\r\\n\\r\\n".encode())
print(s.recv(200).decode(errors="replace").splitlines()[0])
"""


@pytest.fixture
def host_server() -> Iterator[int]:
    """A TCP server on the host's loopback, answering every connection."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                conn.sendall(b"host secret\n")
                conn.close()
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    server.close()


def python(ws: BubblewrapWorkspace, code: str, *args: str, phase: Phase = Phase.ENGINE, **kw):
    return ws.exec(["python3", "-c", code, *args], phase=phase, timeout_s=20, **kw)


def test_the_internet(workspace: BubblewrapWorkspace, escape: Escape) -> None:
    result = python(workspace, CONNECT, "1.1.1.1", "443")
    observed = result.stdout.strip()
    escape.attempt(
        "reach the internet (1.1.1.1:443)",
        expected="network unreachable",
        observed=observed,
        blocked="connected" not in observed and "unreachable" in observed,
    )


def test_dns(workspace: BubblewrapWorkspace, escape: Escape) -> None:
    result = python(workspace, "import socket; print(socket.getaddrinfo('pypi.org', 443))")
    observed = (result.stderr.strip().splitlines() or ["?"])[-1]
    escape.attempt(
        "resolve DNS (pypi.org)",
        expected="no resolver",
        observed=observed,
        blocked=result.exit_code != 0 and "gaierror" in observed,
    )


def test_a_server_on_the_hosts_loopback(
    workspace: BubblewrapWorkspace, escape: Escape, host_server: int
) -> None:
    result = python(workspace, CONNECT, "127.0.0.1", str(host_server))
    escape.attempt(
        "reach a server on the host's loopback",
        expected="connection refused (own lo)",
        observed=result.stdout.strip(),
        blocked="ConnectionRefused" in result.stdout,
    )


def test_the_hosts_loopback_through_the_proxy(
    workspace: BubblewrapWorkspace, escape: Escape, host_server: int
) -> None:
    result = python(
        workspace, VIA_PROXY, f"127.0.0.1:{host_server}", allow_hosts=["allowed.invalid"]
    )
    escape.attempt(
        "host loopback via the egress proxy",
        expected="403 from the proxy",
        observed=result.stdout.strip(),
        blocked=" 403 " in result.stdout,
    )


def test_an_allowed_name_that_points_at_loopback(
    workspace: BubblewrapWorkspace, escape: Escape, host_server: int
) -> None:
    result = python(
        workspace, VIA_PROXY, f"localhost:{host_server}", allow_hosts=[f"localhost:{host_server}"]
    )
    escape.attempt(
        "allow-listed name resolving to loopback",
        expected="403 (loopback refused)",
        observed=result.stdout.strip(),
        blocked=" 403 " in result.stdout,
    )


def test_cloud_metadata(workspace: BubblewrapWorkspace, escape: Escape) -> None:
    result = python(workspace, VIA_PROXY, "169.254.169.254:80", allow_hosts=["169.254.169.254"])
    escape.attempt(
        "cloud metadata (169.254.169.254) via proxy",
        expected="403 (link-local refused)",
        observed=result.stdout.strip(),
        blocked=" 403 " in result.stdout,
    )


def test_a_host_not_on_the_setup_allow_list(workspace: BubblewrapWorkspace, escape: Escape) -> None:
    result = python(workspace, VIA_PROXY, "example.com:443", phase=Phase.SETUP)
    escape.attempt(
        "setup phase to a host not allow-listed",
        expected="403 from the proxy",
        observed=result.stdout.strip(),
        blocked=" 403 " in result.stdout,
    )


def test_an_abstract_unix_socket_of_the_host(
    workspace: BubblewrapWorkspace, escape: Escape
) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind("\0codefactory-escape-test")
    listener.listen()
    try:
        code = (
            "import socket; s = socket.socket(socket.AF_UNIX); "
            "s.connect('\\0codefactory-escape-test'); print('connected')"
        )
        result = python(workspace, code)
    finally:
        listener.close()
    observed = result.stdout.strip() or (result.stderr.strip().splitlines() or ["?"])[-1]
    escape.attempt(
        "connect to a host abstract Unix socket",
        expected="refused (own network namespace)",
        observed=observed,
        blocked="connected" not in result.stdout,
    )
