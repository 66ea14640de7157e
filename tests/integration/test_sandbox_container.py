"""The container-runtime backend behind the same port. This machine has a docker client
and no engine, so what is tested is that the backend says so, clearly, and a run fails
with that reason."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from codefactory.config import Settings
from codefactory.domain import RunState
from codefactory.factory import build_factory
from codefactory.runs.tickets import accept_ticket
from codefactory.sandbox.backends import build_sandbox
from codefactory.sandbox.container import ContainerSandbox, find_runtime
from codefactory.sandbox.errors import SandboxUnavailable
from codefactory.sandbox.settings import SandboxSettings
from tests.acceptance.conftest import TEMPLATE
from tests.conftest import make_repo, sample_service


def engine_answers() -> bool:
    try:
        find_runtime()
    except SandboxUnavailable:
        return False
    return True


@pytest.mark.skipif(engine_answers(), reason="a container engine runs here")
@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker client")
def test_a_docker_client_without_an_engine_is_reported_unavailable(tmp_path: Path) -> None:
    make_repo(tmp_path / "repo", {"a.py": "x = 1\n"})
    sandbox = build_sandbox(SandboxSettings(type="container"), data_dir=tmp_path / "data")
    assert isinstance(sandbox, ContainerSandbox)
    with pytest.raises(SandboxUnavailable, match="`docker` is installed but its engine"):
        sandbox.provision(repo=tmp_path / "repo", commit="HEAD", run_id="r1")
    assert not (tmp_path / "data" / "workspaces").exists()


def test_no_runtime_at_all_and_an_unknown_backend(tmp_path: Path) -> None:
    with pytest.raises(SandboxUnavailable, match="no container runtime found"):
        find_runtime(search_path=str(tmp_path))
    with pytest.raises(SandboxUnavailable, match="unknown sandbox type 'vm'"):
        build_sandbox(SandboxSettings(type="vm"), data_dir=tmp_path)


@pytest.mark.skipif(engine_answers(), reason="a container engine runs here")
def test_a_run_on_an_unavailable_backend_fails_with_the_reason(tmp_path: Path) -> None:
    sample_service(tmp_path / "svc")
    factory = build_factory(
        Settings(data_dir=tmp_path / "data", sandbox=SandboxSettings(type="container"))
    )
    ticket = (TEMPLATE / "tickets" / "SVC-102.json").read_bytes()
    run = accept_ticket(factory, payload=ticket, repo=tmp_path / "svc")
    assert run.state is RunState.FAILED
    assert "engine is unavailable" in run.reason or "no container runtime" in run.reason
