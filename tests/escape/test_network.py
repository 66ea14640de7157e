"""Ways out over the network: the internet, DNS, the host's loopback, abstract sockets, the
proxy asked for what policy does not allow: local addresses in any spelling or behind an
allowed name, the host's own addresses, a plain request smuggling another Host."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from codefactory.sandbox.bubblewrap import BubblewrapSandbox, BubblewrapWorkspace
from codefactory.sandbox.egress import EgressPolicy, host_addresses
from codefactory.sandbox.port import Phase
from tests.egress_upstream import Upstream
from tests.escape.conftest import LIMITS, Escape

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
reply = b""
while b"\\r\\n\\r\\n" not in reply and (chunk := s.recv(4096)):
    reply += chunk
head, _, body = reply.partition(b"\\r\\n\\r\\n")
while not head.startswith(b"HTTP/1.1 200") and (chunk := s.recv(4096)):
    body += chunk
print(head.split(b"\\r\\n")[0].decode(errors="replace"), "|", body.decode(errors="replace").strip())
"""
PLAIN_HTTP = """
import socket, sys
s = socket.create_connection(("127.0.0.1", 3128), timeout=5)
s.sendall(bytes.fromhex(sys.argv[1]))
reply = b""
while chunk := s.recv(4096):
    reply += chunk
text = reply.decode(errors="replace")
answers = [line for line in text.split("\\r\\n") if line.startswith("HTTP/")]
print(" + ".join(answers), "|", text.rsplit("\\r\\n\\r\\n", 1)[-1].strip())
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


@pytest.fixture
def mapped_workspace(
    tmp_path: Path, escape_repo: Path, bwrap_session: None, upstream: Upstream
) -> Iterator[BubblewrapWorkspace]:
    """A workspace whose ENGINE phase may reach `upstream.test`, mapped to `upstream`."""
    policy = EgressPolicy(
        allow=("upstream.test",), resolve={"upstream.test": f"127.0.0.1:{upstream.port}"}
    )
    sandbox = BubblewrapSandbox(
        tmp_path / "workspaces", tmp_path / "cache", limits=LIMITS, egress={"engine": policy}
    )
    ws = sandbox.provision(repo=escape_repo, commit="HEAD", run_id="esc-mapped-upstream")
    yield ws
    ws.destroy()
    sandbox.close()


def test_a_plain_request_to_an_allowed_host_carrying_another_hosts_name(
    mapped_workspace: BubblewrapWorkspace, escape: Escape, upstream: Upstream, host_server: int
) -> None:
    request = (
        f"GET http://upstream.test/ HTTP/1.1\r\nHost: 127.0.0.1:{host_server}\r\n\r\n"
    ).encode()
    result = python(mapped_workspace, PLAIN_HTTP, request.hex())
    escape.attempt(
        "plain HTTP to an allowed host, Host: another",
        expected="403 (Host does not name the target)",
        observed=result.stdout.strip(),
        blocked=result.stdout.startswith("HTTP/1.1 403 ")
        and "does not name the request target" in result.stdout
        and upstream.connections == 0,
    )


def test_a_pipelined_second_request_for_another_host(
    mapped_workspace: BubblewrapWorkspace, escape: Escape, upstream: Upstream, host_server: int
) -> None:
    request = (
        "GET http://upstream.test/first HTTP/1.1\r\nHost: upstream.test\r\n\r\n"
        f"GET http://127.0.0.1:{host_server}/second HTTP/1.1\r\nHost: 127.0.0.1:{host_server}"
        "\r\n\r\nGET /third HTTP/1.1\r\nHost: metadata.google.internal\r\n\r\n"
    ).encode()
    result = python(mapped_workspace, PLAIN_HTTP, request.hex())
    received = upstream.received.get(timeout=10)
    requests = received.count(b" HTTP/1.1\r\n")
    escape.attempt(
        "pipelined 2nd request with another Host",
        expected="only the first request forwarded",
        observed=f"{result.stdout.strip()}; upstream got {requests} request(s)",
        blocked=requests == 1
        and b"/second" not in received
        and b"/third" not in received
        and result.stdout.count("HTTP/1.1 200") == 1,
    )


@pytest.mark.parametrize("spelling", ["0x7f.1", "2130706433", "[::ffff:127.0.0.1]"])
def test_loopback_spelled_otherwise_and_allowed_in_that_spelling(
    workspace: BubblewrapWorkspace, escape: Escape, host_server: int, spelling: str
) -> None:
    target = f"{spelling}:{host_server}"
    result = python(workspace, VIA_PROXY, target, allow_hosts=[target])
    escape.attempt(
        f"CONNECT to loopback as {spelling} (allow-listed)",
        expected="403 (loopback refused)",
        observed=result.stdout.strip(),
        blocked=result.stdout.startswith("HTTP/1.1 403 ") and "loopback" in result.stdout,
    )


def test_the_hosts_own_address(workspace: BubblewrapWorkspace, escape: Escape) -> None:
    own = sorted(
        (
            n.network_address
            for n in host_addresses()
            if n.num_addresses == 1 and not n.network_address.is_link_local
        ),
        key=lambda address: address.version,
    )
    if not own:
        pytest.skip("this machine has no address besides loopback and link-local")
    address = own[0]
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    with socket.create_server((str(address), 0), family=family) as server:
        literal = f"[{address}]" if address.version == 6 else str(address)
        target = f"{literal}:{server.getsockname()[1]}"
        result = python(workspace, VIA_PROXY, target, allow_hosts=[target])
    escape.attempt(
        f"the host's own address {address} (allow-listed)",
        expected="403 (host's own address refused)",
        observed=result.stdout.strip(),
        blocked=result.stdout.startswith("HTTP/1.1 403 ")
        and "one of this host's own addresses" in result.stdout,
    )
