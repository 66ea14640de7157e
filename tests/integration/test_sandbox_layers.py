"""Engine output is the only thing harvested: checks and setup run on a throwaway layer.

A repository's own test code runs in the CHECK phase; whatever it writes into the workspace
must never reach the change, the next round, or the signed commit.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from codefactory.config import Settings
from codefactory.domain import CheckResult, Proposal, RunState, Task
from codefactory.factory import Factory, build_factory
from codefactory.runs.tickets import accept_ticket
from codefactory.sandbox.bubblewrap import BubblewrapSandbox, BubblewrapWorkspace
from codefactory.sandbox.port import Phase, Workspace
from tests.acceptance.conftest import TEMPLATE
from tests.conftest import data_dir_sharing_cache, git, make_repo

pytestmark = pytest.mark.usefixtures("bwrap_available")

# The repository's test configuration edits a source file whenever its tests run: here it
# adds a host to the payment callback allow-list.
TAMPERING_CONFTEST = """
import pathlib

def pytest_configure(config):
    target = pathlib.Path(__file__).parent / "service" / "callbacks.py"
    text = target.read_text()
    host = '"payments.example.com"'
    if "evil.example" not in text:
        target.write_text(text.replace(host, host + ', "evil.example"'))
"""


@pytest.fixture
def sandbox(tmp_path: Path, uv_cache: Path) -> Iterator[BubblewrapSandbox]:
    sandbox = BubblewrapSandbox(tmp_path / "work", uv_cache)
    yield sandbox
    sandbox.close()


@pytest.fixture
def workspace(sandbox: BubblewrapSandbox, tmp_path: Path) -> Iterator[BubblewrapWorkspace]:
    make_repo(tmp_path / "repo", {"app.py": "VALUE = 1\n", "pkg/mod.py": "X = 1\n"})
    ws = sandbox.provision(repo=tmp_path / "repo", commit="HEAD", run_id="layers")
    yield ws
    ws.destroy()


def sh(ws: Workspace, script: str, phase: Phase) -> str:
    result = ws.exec(["sh", "-c", script], phase=phase, timeout_s=30)
    assert result.ok, result.stderr
    return result.stdout


def test_what_a_check_writes_is_never_harvested(workspace: BubblewrapWorkspace) -> None:
    sh(workspace, "echo 'VALUE = 2' > app.py", Phase.ENGINE)
    seen = sh(workspace, "cat app.py; echo 'VALUE = 3' > app.py; echo x > new.txt; rm pkg/mod.py",
              Phase.CHECK)  # fmt: skip
    assert seen == "VALUE = 2\n"  # the check sees the proposal exactly
    assert [(f.path, f.content) for f in workspace.changes().files] == [("app.py", b"VALUE = 2\n")]
    # later checks in the same round share the layer (a check may read its own output)
    assert workspace.read_file("new.txt", phase=Phase.CHECK) == b"x\n"
    # the engine's next command starts from its own diff, not from what the checks left
    assert (
        sh(workspace, "cat app.py; ls; ls pkg", Phase.ENGINE) == "VALUE = 2\napp.py\npkg\nmod.py\n"
    )
    assert workspace.read_file("new.txt") is None


def test_the_checks_see_the_base_plus_the_harvested_change_alone(
    sandbox: BubblewrapSandbox, tmp_path: Path
) -> None:
    """Bytecode, caches and factory files the engine writes are not part of its change, so
    the checks never see them: a stale `.pyc` cannot stand in for the changed source, and a
    repository config the engine writes is carried in the change (and judged), not read
    silently."""
    make_repo(
        tmp_path / "pyc",
        {"src/m.py": "def f():\n    return 1\n", ".codefactory/config.toml": "[test]\n"},
    )
    ws = sandbox.provision(repo=tmp_path / "pyc", commit="HEAD", run_id="pyc")
    try:
        sh(ws, "mkdir -p src/__pycache__ .pytest_cache && echo stale > src/__pycache__/m.pyc"
               " && echo cache > .pytest_cache/x && echo 'def f():\n    return 2' > src/m.py"
               " && echo '[checks]' > .codefactory/config.toml && echo j > .codefactory/j.xml",
           Phase.ENGINE)  # fmt: skip
        changed = {f.path: f.content for f in ws.changes().files}
        assert changed == {"src/m.py": b"def f():\n    return 2\n",
                           ".codefactory/config.toml": b"[checks]\n"}  # fmt: skip
        seen = sh(ws, "ls -A src; ls -A .codefactory; cat .codefactory/config.toml", Phase.CHECK)
        assert seen == "m.py\nconfig.toml\n[checks]\n"
        assert sh(ws, "ls -A", Phase.CHECK).split() == [".codefactory", "src"]
    finally:
        ws.destroy()


def test_a_folder_made_again_and_the_engines_links_are_judged_as_the_change_says(
    workspace: BubblewrapWorkspace,
) -> None:
    """`rm -rf pkg` then the same file again is no change; a link the engine leaves (a
    change never carries one) is not there for the checks either."""
    sh(workspace, "rm -rf pkg && mkdir pkg && echo 'X = 1' > pkg/mod.py"
                  " && ln -s ../app.py pkg/conftest.py && ln -s pkg lib", Phase.ENGINE)  # fmt: skip
    assert workspace.changes().files == ()
    assert sh(workspace, "ls -A; ls -A pkg", Phase.CHECK).split() == ["app.py", "pkg", "mod.py"]


def test_the_engines_deletions_show_through_the_throwaway_layer(
    workspace: BubblewrapWorkspace,
) -> None:
    sh(workspace, "rm -r pkg && mkdir pkg && echo 'Y = 2' > pkg/other.py", Phase.ENGINE)
    assert sh(workspace, "ls pkg", Phase.CHECK) == "other.py\n"
    assert sh(workspace, "test ! -e pkg/mod.py && echo gone", Phase.SETUP) == "gone\n"
    assert sorted(workspace.changes().paths) == ["pkg/mod.py", "pkg/other.py"]


def test_setup_writes_are_thrown_away_too(workspace: BubblewrapWorkspace) -> None:
    sh(workspace, "echo built > app.egg-info", Phase.SETUP)
    assert workspace.changes().is_empty
    assert workspace.read_file("app.egg-info") is None


class TwoRounds:
    """Round 1 breaks the tests (so they run and fail); round 2 makes the lint fix."""

    name = "test:two-rounds"
    version = "0"

    def __init__(self, fixed: bytes) -> None:
        self.fixed = fixed
        self.calls = 0

    def propose(
        self,
        task: Task,
        workspace: Workspace,
        feedback: Sequence[CheckResult],
        session: object = None,
    ) -> Proposal:
        self.calls += 1
        content = b"def to_ascii(h):\n    return h\n" if self.calls == 1 else self.fixed
        workspace.write_file("service/hostnames.py", content)
        return Proposal(engine=self.name, engine_version=self.version, rationale="fix lint")


@pytest.fixture
def factory(tmp_path: Path, uv_cache: Path) -> Factory:
    return build_factory(Settings(data_dir=data_dir_sharing_cache(tmp_path / "data", uv_cache)))


def test_test_code_cannot_write_into_the_signed_commit(factory: Factory, tmp_path: Path) -> None:
    service = TEMPLATE / "sample-service"
    files = {str(p.relative_to(service)): p.read_text() for p in service.rglob("*") if p.is_file()}
    files["conftest.py"] = TAMPERING_CONFTEST
    repo = tmp_path / "sample-service"
    make_repo(repo, files)
    fixed = files["service/hostnames.py"].replace("import os\n\n", "").encode()
    engine = TwoRounds(fixed)
    factory.loop.engines = {"recipe:lint-fix": engine}
    ticket = (TEMPLATE / "tickets" / "SVC-102.json").read_bytes()
    run = accept_ticket(factory, payload=ticket, repo=repo)
    assert engine.calls == 2, run.reason
    assert run.state is RunState.IN_REVIEW, run.reason
    forge = factory.loop.forge.repository_path(run.repository)
    changed = git(forge, "diff", "--name-only", f"{run.base_commit}..{run.head_commit}")
    assert changed.split() == ["service/hostnames.py"]
    callbacks = git(forge, "show", f"{run.head_commit}:service/callbacks.py")
    assert "evil.example" not in callbacks
    patch = (Path(run.package_dir) / "change.patch").read_text()
    assert "evil.example" not in patch


def test_what_setup_writes_is_never_what_the_checks_judge(workspace: BubblewrapWorkspace) -> None:
    """Red team: a build backend the change brought rewrote the changed file during the setup
    rerun, and lint, SAST and secrets then scanned the rewritten file, not the committed one."""
    sh(workspace, "echo 'KEY = \"AKIA...\"' > app.py", Phase.ENGINE)
    sh(workspace, "echo 'VALUE = 1' > app.py; rm pkg/mod.py", Phase.SETUP)
    assert sh(workspace, "cat app.py; ls pkg", Phase.CHECK) == 'KEY = "AKIA..."\nmod.py\n'
    assert [f.path for f in workspace.changes().files] == ["app.py"]


def test_a_workspaces_setup_never_writes_a_cache_another_setup_reads(
    tmp_path: Path, uv_cache: Path
) -> None:
    """Red team: any run's setup could edit a package in the repository's cache, and the next
    image build of the main branch installed it."""
    from codefactory.sandbox.images import ImageCache

    repo = tmp_path / "repo"
    make_repo(repo, {"app.py": "A = 1\n"})
    images = ImageCache(tmp_path / "images", python="/usr/bin/python3")
    sandbox = BubblewrapSandbox(tmp_path / "work", tmp_path / "cache", images=images)
    try:
        first = sandbox.provision(repo=repo, commit="HEAD", run_id="poisoner")
        sh(first, "echo poison > /cache/planted.py", Phase.SETUP)
        first.destroy()
        second = sandbox.provision(repo=repo, commit="HEAD", run_id="victim")
        try:
            seen = second.exec(["/usr/bin/ls", "/cache"], phase=Phase.SETUP).stdout
        finally:
            second.destroy()
    finally:
        sandbox.close()
    assert "planted.py" not in seen
    assert not list((tmp_path / "cache").rglob("planted.py"))
