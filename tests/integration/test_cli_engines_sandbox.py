"""What agent CLIs need of the sandbox: host folders lent read-only to one command (the engine
image and its configuration), and a harness host name the egress proxy maps to its loopback
listener for one call. Real bubblewrap, a real proxy, a real server on the host's loopback."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from codefactory.sandbox.audited import AuditedSandbox
from codefactory.sandbox.bubblewrap import BubblewrapSandbox, BubblewrapWorkspace
from codefactory.sandbox.container import ContainerWorkspace
from codefactory.sandbox.egress import EgressAttempt
from codefactory.sandbox.errors import SandboxUnavailable
from codefactory.sandbox.limits import Limits
from codefactory.sandbox.port import Phase
from tests.conftest import make_repo

needs_bwrap = pytest.mark.usefixtures("bwrap_available")

FETCH = """
import sys, urllib.request
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())
except Exception as err:
    print("failed:", err)
"""


class Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        body = f"gateway stand-in, path {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def listener() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[tuple[BubblewrapWorkspace, list[EgressAttempt]]]:
    make_repo(tmp_path / "repo", {"app.py": "print('hi')\n"})
    sandbox = BubblewrapSandbox(tmp_path / "work", tmp_path / "cache")
    attempts: list[EgressAttempt] = []
    ws = sandbox.provision(
        repo=tmp_path / "repo", commit="HEAD", run_id="run-cli", on_egress=attempts.append
    )
    yield ws, attempts
    ws.destroy()
    sandbox.close()


@pytest.fixture
def image(tmp_path: Path) -> Path:
    folder = tmp_path / "image"
    (folder / "bin").mkdir(parents=True)
    tool = folder / "bin" / "tool"
    tool.write_text("#!/usr/bin/sh\necho tool from the image\n")
    tool.chmod(0o755)
    folder.chmod(0o755)
    (folder / "bin").chmod(0o755)
    return folder


@needs_bwrap
def test_a_lent_folder_is_read_only_nosuid_nodev_and_only_for_that_call(
    workspace: tuple[BubblewrapWorkspace, list[EgressAttempt]], image: Path
) -> None:
    ws, _ = workspace
    script = (
        "/opt/engine/bin/tool; "
        "/usr/bin/grep ' /opt/engine ' /proc/self/mountinfo; "
        "echo x > /opt/engine/new 2>/dev/null || echo write refused"
    )
    lent = ws.exec(["/usr/bin/sh", "-c", script], phase=Phase.ENGINE, mounts={"/opt/engine": image})
    later = ws.exec(["/usr/bin/sh", "-c", "ls /opt/engine || echo absent"], phase=Phase.ENGINE)
    lines = lent.stdout.splitlines()
    assert lines[0] == "tool from the image"
    options = lines[1].split()[5].split(",")
    assert {"ro", "nosuid", "nodev"} <= set(options)
    assert lines[2] == "write refused"
    assert not (image / "new").exists()
    assert "absent" in later.stdout
    assert ws.changes().files == ()


@needs_bwrap
@pytest.mark.parametrize(
    ("target", "why"),
    [
        ("/workspace/engine", "overlaps the sandbox's /workspace"),
        ("/", "overlaps"),
        ("/opt", "overlaps the sandbox's /opt/codefactory"),
        ("/opt/codefactory/bin/x", "overlaps the sandbox's /opt/codefactory"),
        ("/usr/local/engine", "overlaps the sandbox's /usr"),
        ("/tmp/engine", "overlaps the sandbox's /tmp"),
        ("/env", "overlaps the sandbox's /env"),
        ("/run/codefactory", "overlaps the sandbox's /run"),
        ("opt/engine", "absolute, normal path"),
        ("/opt/a/../engine", "absolute, normal path"),
        ("/opt/engine/", "absolute, normal path"),
    ],
)
def test_a_mount_over_what_the_sandbox_shows_is_refused_before_anything_runs(
    workspace: tuple[BubblewrapWorkspace, list[EgressAttempt]],
    image: Path,
    target: str,
    why: str,
) -> None:
    ws, _ = workspace
    with pytest.raises(ValueError, match=why.replace("/", "/")):
        ws.exec(
            ["/usr/bin/sh", "-c", "echo ran > ran.txt"],
            phase=Phase.ENGINE,
            mounts={target: image},
        )
    assert ws.read_file("ran.txt") is None


@needs_bwrap
def test_overlapping_mounts_and_missing_folders_are_refused(
    workspace: tuple[BubblewrapWorkspace, list[EgressAttempt]], image: Path, tmp_path: Path
) -> None:
    ws, _ = workspace
    with pytest.raises(ValueError, match="overlap"):
        ws.exec(["true"], phase=Phase.ENGINE, mounts={"/opt/e": image, "/opt/e/config": image})
    with pytest.raises(ValueError, match="not an existing folder"):
        ws.exec(["true"], phase=Phase.ENGINE, mounts={"/opt/e": tmp_path / "missing"})


@needs_bwrap
def test_a_call_maps_the_host_it_allows_to_a_loopback_listener(
    workspace: tuple[BubblewrapWorkspace, list[EgressAttempt]], listener: int
) -> None:
    ws, attempts = workspace
    host = f"gateway.codefactory.internal:{listener}"
    reached = ws.exec(
        ["python3", "-c", FETCH, f"http://{host}/v1/models"],
        phase=Phase.ENGINE,
        allow_hosts=[host],
        resolve={"gateway.codefactory.internal": f"127.0.0.1:{listener}"},
    )
    unmapped = ws.exec(
        ["python3", "-c", FETCH, f"http://{host}/v1/models"],
        phase=Phase.ENGINE,
        allow_hosts=[host],
    )
    assert reached.stdout.strip() == "gateway stand-in, path /v1/models"
    assert "failed" in unmapped.stdout  # the name alone resolves nowhere (no DNS for it)
    assert [(a.host, a.port, a.allowed) for a in attempts] == [
        ("gateway.codefactory.internal", listener, True),
        ("gateway.codefactory.internal", listener, False),
    ]
    assert "mapped to 127.0.0.1" in attempts[0].reason


@needs_bwrap
def test_a_resolve_entry_for_a_host_the_call_does_not_allow_is_refused(
    workspace: tuple[BubblewrapWorkspace, list[EgressAttempt]],
) -> None:
    ws, _ = workspace
    with pytest.raises(ValueError, match="names no host this call allows"):
        ws.exec(
            ["true"],
            phase=Phase.ENGINE,
            allow_hosts=["gateway.codefactory.internal:8443"],
            resolve={"pypi.org": "127.0.0.1:1"},
        )
    with pytest.raises(ValueError, match="names no host"):
        ws.exec(["true"], phase=Phase.ENGINE, resolve={"pypi.org": "127.0.0.1:1"})
    with pytest.raises(ValueError, match="without an address"):
        ws.exec(
            ["true"],
            phase=Phase.ENGINE,
            allow_hosts=["gateway.codefactory.internal:8443"],
            resolve={"gateway.codefactory.internal": ":8443"},
        )


@needs_bwrap
def test_the_audited_wrapper_passes_mounts_and_resolve_on(
    tmp_path: Path, image: Path, listener: int
) -> None:
    make_repo(tmp_path / "repo", {"app.py": "print('hi')\n"})
    events: list[tuple[str, str, dict[str, object]]] = []
    sandbox = AuditedSandbox(
        BubblewrapSandbox(tmp_path / "work", tmp_path / "cache"),
        lambda event: events.append((event.name, event.run_id, event.data)),
    )
    ws = sandbox.provision(repo=tmp_path / "repo", commit="HEAD", run_id="run-audited")
    host = f"gateway.codefactory.internal:{listener}"
    try:
        result = ws.exec(
            ["/usr/bin/sh", "-c", f"/opt/engine/bin/tool && python3 -c '{FETCH}' http://{host}/"],
            phase=Phase.ENGINE,
            allow_hosts=[host],
            resolve={"gateway.codefactory.internal": f"127.0.0.1:{listener}"},
            mounts={"/opt/engine": image},
        )
    finally:
        ws.destroy()
    assert result.stdout.splitlines() == ["tool from the image", "gateway stand-in, path /"]
    assert [(name, data["host"], data["allowed"]) for name, _, data in events] == [
        ("egress-attempted", "gateway.codefactory.internal", True)
    ]


def test_the_container_backend_says_it_cannot_lend_folders(tmp_path: Path, image: Path) -> None:
    ws = ContainerWorkspace(
        run_id="r", base_commit="", home=tmp_path, runtime="/nonexistent/docker",
        image="python:3.11-slim", limits=Limits(),
    )  # fmt: skip
    with pytest.raises(SandboxUnavailable, match="cannot lend host folders"):
        ws.exec(["true"], phase=Phase.ENGINE, mounts={"/opt/engine": image})
    with pytest.raises(SandboxUnavailable, match="does not offer egress"):
        ws.exec(["true"], phase=Phase.ENGINE, resolve={"gateway.codefactory.internal": "x:1"})
