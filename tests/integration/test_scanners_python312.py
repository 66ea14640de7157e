"""Lint and SAST for a Python 3.12 project, for real: the project's Python provided to the
sandbox, its setup phase building the scanners' environment with it, and a repository
configuration that tries every switch able to blind ruff or bandit.

The interpreter is this machine's pyenv CPython 3.12.1, laid out once as a uv-managed install
(`cpython-3.12.1-linux-x86_64-gnu`, its ELF run paths made relative) under
~/.cache/codefactory-tests, where `PythonInterpreters` finds it without downloading anything.
bandit comes from the package index through the setup phase's egress proxy (shared uv cache).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from codefactory.domain import CheckResult
from codefactory.sandbox.bubblewrap import BubblewrapSandbox, BubblewrapWorkspace
from codefactory.sandbox.errors import SetupFailed
from codefactory.sandbox.layout import SCANNERS_ENV
from codefactory.sandbox.port import Phase
from codefactory.sandbox.pythons import PythonInterpreters
from codefactory.sandbox.setup import install_dependencies
from codefactory.verify.lint import RuffCheck
from codefactory.verify.sast import SastCheck
from codefactory.verify.serial import SerialWorkspace
from tests.conftest import make_repo

pytestmark = pytest.mark.usefixtures("bwrap_available")

PYENV_312 = Path("/root/.pyenv/versions/3.12.1")
PYTHONS = Path.home() / ".cache" / "codefactory-tests" / "h6-pythons"
MANAGED = "cpython-3.12.1-linux-x86_64-gnu"
SKIPPED = ("lib/python3.12/test", "lib/python3.12/idlelib", "lib/python3.12/tkinter",
           "lib/python3.12/turtledemo", "lib/python3.12/site-packages", "share")  # fmt: skip

PYPROJECT = """\
[tool.ruff]
fix = true
fix-only = true
unsafe-fixes = true
show-fixes = true
force-exclude = true
respect-gitignore = true
exclude = ["svc"]
extend-exclude = ["svc/generic.py"]

[tool.ruff.lint]
select = ["F", "E"]
exclude = ["svc/*"]

[tool.bandit]
exclude_dirs = ["svc"]
skips = ["B101"]
"""
REPO = {
    ".python-version": "3.12\n",
    "pyproject.toml": PYPROJECT,
    ".bandit": "[bandit]\nexclude = svc\ntargets = nothing\n",
    ".gitignore": "svc/generic.py\n",
    "svc/__init__.py": "",
    "svc/app.py": "def ok() -> int:\n    return 1\n",
}
GENERIC = (
    "import os\n"
    "import subprocess\n\n"
    "type Command = str\n\n\n"
    "def run[T](command: T) -> T:\n"
    "    assert command\n"
    "    match command:\n"
    "        case str():\n"
    "            subprocess.call(command, shell=True)\n"
    "    return command\n"
)
"""PEP 695 (3.12) and `match` (3.10), an unused import (F401, which `fix` would remove),
`shell=True` (B602, line 11) and an `assert` (B101, skipped by the repository)."""


def _interpreter_root() -> Path:
    """The uv-managed layout of pyenv's 3.12.1, built once (a copy, run paths relative)."""
    target = PYTHONS / MANAGED
    if (target / "bin" / "python3.12").is_file():
        return PYTHONS
    building = PYTHONS / f".{MANAGED}.{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    old = str(PYENV_312 / "lib").encode()
    new = b"$ORIGIN/../lib".ljust(len(old), b"\0")
    for path in sorted(PYENV_312.rglob("*")):
        relative = path.relative_to(PYENV_312).as_posix()
        if "__pycache__" in relative or relative.startswith(SKIPPED):
            continue
        copy = building / relative
        if path.is_symlink():
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.symlink_to(os.readlink(path))
        elif path.is_dir():
            copy.mkdir(parents=True, exist_ok=True)
        else:
            copy.parent.mkdir(parents=True, exist_ok=True)
            data = path.read_bytes()
            copy.write_bytes(data.replace(old, new) if data.startswith(b"\x7fELF") else data)
            copy.chmod(path.stat().st_mode & 0o755)
    (building / "lib" / "python3.12" / "site-packages").mkdir(exist_ok=True)
    try:
        building.rename(target)
    except OSError:  # another session built it first
        shutil.rmtree(building, ignore_errors=True)
    return PYTHONS


@pytest.fixture(scope="module")
def workspace(
    tmp_path_factory: pytest.TempPathFactory, uv_cache: Path
) -> Iterator[BubblewrapWorkspace]:
    if not PYENV_312.is_dir():
        pytest.skip(f"no CPython 3.12.1 build at {PYENV_312}")
    interpreters = PythonInterpreters(
        _interpreter_root(), host_python="/usr/bin/python3", downloads_json_url=None, mirror=None
    )
    root = tmp_path_factory.mktemp("py312")
    make_repo(root / "repo", REPO)
    sandbox = BubblewrapSandbox(root / "work", uv_cache, interpreters=interpreters)
    made = sandbox.provision(repo=root / "repo", commit="HEAD", run_id="py312")
    try:
        install_dependencies(made, interpreters=interpreters)
    except SetupFailed as exc:
        made.destroy()
        sandbox.close()
        pytest.skip(f"could not build the project's environment: {exc}")
    made.write_file("svc/generic.py", GENERIC.encode())
    yield made
    made.destroy()
    sandbox.close()


def _results(result: CheckResult) -> list[dict[str, object]]:
    found: list[dict[str, object]] = json.loads(result.evidence)["runs"][0]["results"]
    return found


def test_ruff_lints_with_the_project_s_target_and_cannot_be_told_to_fix_or_exclude(
    workspace: BubblewrapWorkspace,
) -> None:
    result = RuffCheck().run(workspace, workspace.changes())

    rules = sorted((f.rule, f.path, f.line) for f in result.findings)
    # fix, fix-only, unsafe-fixes: reported, not removed; every exclude: the file is linted
    assert ("F401", "svc/generic.py", 1) in rules, result.summary
    # target py312 (from .python-version): PEP 695 and `match` are not syntax errors
    assert not [r for r in rules if r[0] == "invalid-syntax"], rules
    assert not result.passed
    shown = workspace.read_file("svc/generic.py", phase=Phase.CHECK)
    assert shown == GENERIC.encode()  # nothing rewrote the file


def test_bandit_parses_pep_695_with_the_project_s_python(workspace: BubblewrapWorkspace) -> None:
    probe = workspace.exec([f"{SCANNERS_ENV}/bin/python", "-V"], phase=Phase.CHECK)
    assert probe.stdout.strip() == "Python 3.12.1", probe.stderr

    result = SastCheck().run(workspace, workspace.changes())

    found = {(f.rule, f.path, f.line) for f in result.findings}
    assert ("B602", "svc/generic.py", 11) in found, result.summary
    assert not any(f.rule == "sast-file-unscanned" for f in result.findings), result.findings
    # the repository's rule selection counts (B101 skipped, by bandit and by ruff's S101) ...
    assert not any(f.rule == "B101" for f in result.findings)
    # ... its exclude_dirs / .bandit exclude / targets do not
    assert "bandit on Python 3.12" in result.summary and "skipping B101" in result.summary
    assert not result.passed


def test_without_a_3_12_scanner_the_file_is_named_unscannable(
    workspace: BubblewrapWorkspace,
) -> None:
    result = SastCheck(scanners_env="/env/.no-scanners").run(workspace, workspace.changes())

    unscanned = [f for f in result.findings if f.rule == "sast-file-unscanned"]
    assert [f.path for f in unscanned] == ["svc/generic.py"], result.findings
    message = unscanned[0].message
    assert message.startswith("could not scan: the file uses Python 3.12 syntax"), message
    assert "no Python 3.12 scanner is installed" in message
    assert "bandit runs on Python 3.11" in message
    assert unscanned[0].line == 4  # `type Command = str`
    assert "not scanned (svc/generic.py: could not scan: the file uses Python 3.12" in (
        result.summary
    )
    assert not result.passed


def test_three_identical_runs_give_identical_results(workspace: BubblewrapWorkspace) -> None:
    change = workspace.changes()
    shared = SerialWorkspace(workspace)  # as the gate runs cheap checks: in parallel, their
    runs = []  # commands interleaved one at a time
    for _ in range(3):
        with ThreadPoolExecutor(max_workers=2) as pool:
            lint = pool.submit(RuffCheck().run, shared, change)
            sast = pool.submit(SastCheck().run, shared, change)
            runs.append((_results(lint.result()), _results(sast.result())))
    assert runs[0] == runs[1] == runs[2]
    assert runs[0][0] and runs[0][1]
    assert workspace.read_file("svc/generic.py", phase=Phase.CHECK) == GENERIC.encode()
