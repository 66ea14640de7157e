"""Bad input to the sandbox: a repository that cannot be exported, a setup phase that
fails, a missing bubblewrap, an exhausted disk. Each ends the run `failed` with a reason
naming the cause, and leaves no workspace folder, image layer or mount behind."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from codefactory.config import Settings
from codefactory.domain import RunState
from codefactory.factory import Factory, build_factory
from codefactory.runs.tickets import accept_ticket
from codefactory.sandbox.bubblewrap import BubblewrapSandbox
from codefactory.sandbox.errors import ProvisionFailed, SandboxUnavailable
from codefactory.sandbox.settings import SandboxSettings
from tests.acceptance.conftest import TEMPLATE
from tests.conftest import data_dir_sharing_cache, git, sample_service

pytestmark = pytest.mark.usefixtures("bwrap_available")


def sample_repo(path: Path, **replace: str) -> Path:
    return sample_service(path, **replace)


def factory_for(data_dir: Path, uv_cache: Path, **sandbox: object) -> Factory:
    data_dir_sharing_cache(data_dir, uv_cache)
    return build_factory(Settings(data_dir=data_dir, sandbox=SandboxSettings(**sandbox)))  # type: ignore[arg-type]


def run_lint(factory: Factory, repo: Path):
    ticket = (TEMPLATE / "tickets" / "SVC-102.json").read_bytes()
    return accept_ticket(factory, payload=ticket, repo=repo)


def leftovers(factory: Factory) -> list[str]:
    """Workspace folders, unfinished image layers and mounts under the data folder."""
    data = factory.settings.data_dir
    found = [str(p) for p in (data / "workspaces").glob("*")]
    found += [str(p) for p in (data / "images").glob("*/*/.*.tmp")]
    found += [line for line in Path("/proc/mounts").read_text().splitlines() if str(data) in line]
    return found


def test_a_repository_that_cannot_be_exported(tmp_path: Path, uv_cache: Path) -> None:
    repo = sample_repo(tmp_path / "broken")
    blob = git(repo, "rev-parse", "HEAD:service/hostnames.py")
    (repo / ".git" / "objects" / blob[:2] / blob[2:]).unlink()
    factory = factory_for(tmp_path / "data", uv_cache)
    run = run_lint(factory, repo)
    assert run.state is RunState.FAILED
    assert "could not fetch" in run.reason and "corruption" in run.reason, run.reason
    assert leftovers(factory) == []


def test_a_setup_phase_that_cannot_resolve_its_requirements(tmp_path: Path, uv_cache: Path) -> None:
    missing = "codefactory-no-such-package-4711"
    repo = sample_repo(tmp_path / "svc", **{"requirements.txt": f"{missing}==1.0\n"})
    factory = factory_for(tmp_path / "data", uv_cache)
    run = run_lint(factory, repo)
    assert run.state is RunState.FAILED
    assert run.reason.startswith("setup phase failed at `uv pip install")
    assert missing in run.reason
    assert leftovers(factory) == []
    assert not list((factory.settings.data_dir / "images").glob("*/envs/*/env"))
    egress = [e.data for e in factory.audit.events(run.id) if e.name == "egress-attempted"]
    assert egress and all(e["phase"] == "setup" and e["allowed"] for e in egress)


def test_a_missing_bwrap(tmp_path: Path, uv_cache: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    with pytest.raises(SandboxUnavailable, match="`bwrap` is not installed.*bubblewrap"):
        BubblewrapSandbox(tmp_path / "w", tmp_path / "c", search_path=str(empty)).provision(
            repo=tmp_path, commit="HEAD", run_id="x"
        )
    factory = factory_for(tmp_path / "data", uv_cache, search_path=str(empty))
    run = run_lint(factory, sample_repo(tmp_path / "svc"))
    assert run.state is RunState.FAILED
    assert "`bwrap` is not installed" in run.reason
    assert leftovers(factory) == []


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A data folder whose workspaces and images live on a 1 MiB file system."""
    data = tmp_path / "data"
    for name in ("workspaces", "images"):
        (data / name).mkdir(parents=True)
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m", "tiny", str(data / name)], check=True
        )
    yield data
    for name in ("workspaces", "images"):
        subprocess.run(["umount", "-l", str(data / name)], check=False)


def test_an_exhausted_disk(tmp_path: Path, uv_cache: Path, tiny_disk: Path) -> None:
    repo = sample_repo(tmp_path / "svc", **{"data/blob.txt": "x" * 3_000_000})
    with pytest.raises(ProvisionFailed, match="No space left on device"):
        BubblewrapSandbox(tiny_disk / "workspaces", uv_cache).provision(
            repo=repo, commit="HEAD", run_id="direct"
        )
    factory = factory_for(tiny_disk, uv_cache)
    run = run_lint(factory, repo)
    assert run.state is RunState.FAILED
    assert "No space left on device" in run.reason
    assert not any((tiny_disk / "workspaces").iterdir())
    assert not [p for p in (tiny_disk / "images").glob("*/trees/*") if p.is_dir()]


class LeavesBehind:
    """An engine that makes a real change and leaves `extra` (a shell line) in its layer."""

    name = "test:leaves-behind"
    version = "0"

    def __init__(self, extra: str) -> None:
        self.extra = extra

    def propose(self, task, workspace, feedback, session=None):  # type: ignore[no-untyped-def]
        from codefactory.domain import Proposal
        from codefactory.sandbox.port import Phase

        workspace.write_file("service/__init__.py", b'"""The sample service."""\n')
        result = workspace.exec(["python3", "-c", self.extra], phase=Phase.ENGINE)
        assert result.ok, result.stderr
        return Proposal(engine=self.name, engine_version=self.version, rationale="odd files")


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ("import os; os.mkfifo('service/pipe')", "a FIFO at service/pipe"),
        ("import socket; socket.socket(socket.AF_UNIX).bind('sock')", "a socket at sock"),
        ("open(b'caf\\xe9.py', 'w').write('x = 1')", "not valid UTF-8: b'caf\\xe9.py'"),
    ],
    ids=["fifo", "socket", "non-utf8-name"],
)
def test_what_a_commit_cannot_carry_fails_the_run_with_its_name(
    tmp_path: Path, uv_cache: Path, extra: str, reason: str
) -> None:
    factory = factory_for(tmp_path / "data", uv_cache)
    factory.loop.engines = {"recipe:lint-fix": LeavesBehind(extra)}
    run = run_lint(factory, sample_repo(tmp_path / "repo"))
    assert run.state is RunState.FAILED
    assert reason in run.reason, run.reason
    assert leftovers(factory) == []
    events = [e.name for e in factory.audit.events(run.id)]
    assert events[-1] == "run-state-changed"
