"""The escape suite: each test tries one way out of the sandbox and records what it saw.

At the end of the session the terminal summary prints the table the issue asks for:
attempt, expected, observed. A row whose escape succeeded also fails its test.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from codefactory.sandbox.bubblewrap import BubblewrapSandbox, BubblewrapWorkspace
from codefactory.sandbox.limits import MIB, Limits
from tests.conftest import make_repo

ROWS: list[tuple[str, str, str, bool]] = []
LIMITS = Limits(cpu_s=2, memory_bytes=256 * MIB, processes=128, file_bytes=32 * MIB)


@dataclass
class Escape:
    """Records one attempt, then asserts it failed."""

    def attempt(self, name: str, *, expected: str, observed: str, blocked: bool) -> None:
        ROWS.append((name, expected, observed, blocked))
        assert blocked, f"{name}: expected {expected}, observed {observed}"


@pytest.fixture
def escape() -> Escape:
    return Escape()


@pytest.fixture(scope="session")
def host_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A host folder holding a file that symbolic links in the repository point at."""
    folder = tmp_path_factory.mktemp("host")
    (folder / "victim.txt").write_text("host content\n")
    return folder


@pytest.fixture(scope="session")
def escape_repo(tmp_path_factory: pytest.TempPathFactory, host_dir: Path) -> Path:
    repo = tmp_path_factory.mktemp("escape") / "repo"
    make_repo(repo, {"README.md": "escape suite\n", "app.py": "print('hi')\n"})
    from tests.conftest import git

    for name, target in {
        "shadow-link": "/etc/shadow",
        "root-link": "/root",
        "host-link": str(host_dir),
    }.items():
        (repo / name).symlink_to(target)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "links to host paths")
    return repo


@pytest.fixture(scope="session")
def escape_sandbox(
    tmp_path_factory: pytest.TempPathFactory, bwrap_session: None
) -> Iterator[BubblewrapSandbox]:
    data = tmp_path_factory.mktemp("data")
    sandbox = BubblewrapSandbox(
        data / "workspaces",
        data / "cache",
        limits=LIMITS,
        max_output_bytes=1_000_000,
        disk_bytes=64 * MIB,
        tmp_bytes=16 * MIB,
    )
    yield sandbox
    sandbox.close()


@pytest.fixture(scope="session")
def bwrap_session() -> None:
    import shutil

    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed (make test installs it)")


@pytest.fixture
def workspace(
    escape_sandbox: BubblewrapSandbox, escape_repo: Path, request: pytest.FixtureRequest
) -> Iterator[BubblewrapWorkspace]:
    run_id = "esc-" + re.sub(r"[^A-Za-z0-9_-]", "_", request.node.name)[:60]
    ws = escape_sandbox.provision(repo=escape_repo, commit="HEAD", run_id=run_id)
    yield ws
    ws.destroy()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not ROWS:
        return
    width = max(len(row[0]) for row in ROWS)
    expected_width = max(len(row[1]) for row in ROWS)
    terminalreporter.section(f"escape suite: {len(ROWS)} attempts")
    terminalreporter.write_line(f"{'attempt':<{width}}  {'expected':<{expected_width}}  observed")
    for name, expected, observed, blocked in ROWS:
        mark = "" if blocked else "   <-- ESCAPED"
        terminalreporter.write_line(
            f"{name:<{width}}  {expected:<{expected_width}}  {observed}{mark}"
        )
