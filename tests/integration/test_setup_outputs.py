"""Files a build hook writes into the tree during the setup phase (hatch-vcs's version file)
reach the engine and check phases, through an image and through a workspace's own setup, and
are never part of the change. One provision (its image build installs from PyPI through the
egress proxy), then one setup of the workspace's own."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from codefactory.sandbox.bubblewrap import BubblewrapSandbox
from codefactory.sandbox.images import ImageCache
from codefactory.sandbox.port import Phase
from codefactory.sandbox.setup import SetupLog, install_dependencies
from codefactory.sandbox.setup_outputs import (
    MANIFEST,
    MAX_OUTPUT_BYTES,
    MAX_OUTPUTS,
    OUTPUTS_DIR,
    collect,
)
from tests.conftest import make_repo

CACHE = Path.home() / ".cache" / "codefactory-tests" / "setup-outputs"
VERSION_FILE = "src/verpkg/_version.py"


def pyproject(fallback: str) -> str:
    return (
        '[build-system]\nrequires = ["hatchling", "hatch-vcs"]\n'
        'build-backend = "hatchling.build"\n\n'
        '[project]\nname = "verpkg"\ndynamic = ["version"]\nrequires-python = ">=3.9"\n\n'
        '[dependency-groups]\ntest = ["pytest"]\n\n'
        # no .git in the sandbox's tree: hatch-vcs falls back to this version
        f'[tool.hatch.version]\nsource = "vcs"\nfallback-version = "{fallback}"\n\n'
        f'[tool.hatch.build.hooks.vcs]\nversion-file = "{VERSION_FILE}"\n\n'
        '[tool.hatch.build.targets.wheel]\npackages = ["src/verpkg"]\n'
    )


FILES = {
    "pyproject.toml": pyproject("0.1.0"),
    ".gitignore": f"{VERSION_FILE}\n",
    "src/verpkg/__init__.py": "from verpkg._version import __version__\n",
    "tests/test_version.py": (
        "import verpkg\n\n\ndef test_version():\n    assert verpkg.__version__.startswith('0.')\n"
    ),
}
VERSION = ["python", "-c", "import verpkg; print(verpkg.__version__)"]


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[BubblewrapSandbox]:
    CACHE.mkdir(parents=True, exist_ok=True)
    images = ImageCache(tmp_path / "images", python="/usr/bin/python3")
    sandbox = BubblewrapSandbox(tmp_path / "work", CACHE, images=images)
    yield sandbox
    sandbox.close()


@pytest.mark.usefixtures("bwrap_available")
def test_a_version_file_written_by_a_build_hook_reaches_every_phase_and_no_change(
    sandbox: BubblewrapSandbox, tmp_path: Path
) -> None:
    make_repo(tmp_path / "repo", FILES)
    ws = sandbox.provision(repo=tmp_path / "repo", commit="HEAD", run_id="outputs")
    try:
        # the image's setup kept the file in its environment, with a manifest
        assert ws.lease is not None
        manifest = json.loads((ws.lease.env / MANIFEST).read_text())
        assert [entry["path"] for entry in manifest["files"]] == [VERSION_FILE]
        kept = (ws.lease.env / OUTPUTS_DIR / VERSION_FILE).read_text()
        assert "0.1.0" in kept
        assert set(ws.setup_outputs) == {VERSION_FILE}
        assert install_dependencies(ws) == ["pyproject.toml"]  # the image's: nothing runs

        engine = ws.exec(VERSION, phase=Phase.ENGINE)
        assert (engine.exit_code, engine.stdout) == (0, "0.1.0\n"), engine.stderr
        assert ws.read_file(VERSION_FILE) == kept.encode()
        placed = os.lstat(ws.home.upper / VERSION_FILE)
        assert ws.mounts.owner is not None and (placed.st_uid, placed.st_gid) == ws.mounts.owner
        tests = ws.exec(["python", "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                        phase=Phase.CHECK)  # fmt: skip
        assert tests.exit_code == 0, tests.stdout + tests.stderr
        assert ws.changes().is_empty

        # an engine's edit of the file is not carried, and the checks see what setup made
        ws.write_file(VERSION_FILE, b"__version__ = 'edited'\n")
        ws.write_file("src/verpkg/extra.py", b"X = 1\n")
        assert [f.path for f in ws.changes().files] == ["src/verpkg/extra.py"]
        check = ws.exec(VERSION, phase=Phase.CHECK)
        assert check.stdout == "0.1.0\n", check.stderr

        # a change to a dependency file: the workspace's own setup keeps the new file
        ws.write_file("pyproject.toml", pyproject("0.2.0").encode())
        log = SetupLog()
        assert install_dependencies(ws, timeout_s=300, log=log) == ["pyproject.toml"]
        assert f"kept 1 file(s) setup created in the tree: {VERSION_FILE}" in log.text
        assert ws.exec(VERSION, phase=Phase.ENGINE).stdout == "0.2.0\n"
        assert ws.exec(VERSION, phase=Phase.CHECK).stdout == "0.2.0\n"
        tests = ws.exec(["python", "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                        phase=Phase.CHECK)  # fmt: skip
        assert tests.exit_code == 0, tests.stdout + tests.stderr
        changed = [f.path for f in ws.changes().files]
        assert changed == ["pyproject.toml", "src/verpkg/extra.py"]
    finally:
        ws.destroy()


def test_only_new_regular_files_within_the_caps_are_kept(tmp_path: Path) -> None:
    tree, engine, setup = tmp_path / "tree", tmp_path / "engine", tmp_path / "setup"
    for folder in (tree / "pkg", engine / "pkg", setup / "pkg" / "__pycache__", setup / "zz"):
        folder.mkdir(parents=True)
    (tree / "pkg" / "committed.py").write_text("A = 1\n")
    (engine / "pkg" / "engines.py").write_text("B = 1\n")
    (setup / "pkg" / "committed.py").write_text("A = 2\n")  # a rewritten committed file
    (setup / "pkg" / "engines.py").write_text("B = 2\n")  # the engine's own file
    (setup / "pkg" / "__pycache__" / "x.pyc").write_bytes(b"\0")  # tool output
    (setup / "pkg" / "link.py").symlink_to("/etc/passwd")
    (setup / "pkg" / "big.bin").write_bytes(b"\0" * (MAX_OUTPUT_BYTES + 1))
    (setup / "pkg" / "_version.py").write_text("__version__ = '1'\n")
    for n in range(MAX_OUTPUTS + 5):
        (setup / "zz" / f"f{n:03}.txt").write_text(str(n))

    kept = collect(setup, tree=tree, engine=engine, known=())

    assert "pkg/_version.py" in kept.files and len(kept.files) == MAX_OUTPUTS
    assert not {"pkg/committed.py", "pkg/engines.py", "pkg/link.py", "pkg/big.bin"} & set(
        kept.files
    )
    assert any("pkg/big.bin: larger than" in why for why in kept.ignored)
    assert any(f"past the cap of {MAX_OUTPUTS}" in why for why in kept.ignored)
    assert "# not kept: pkg/big.bin" in kept.log_lines()
    # a file of the engine's that setup already made before is kept again
    again = collect(setup, tree=tree, engine=engine, known=("pkg/engines.py",))
    assert "pkg/engines.py" in again.files
