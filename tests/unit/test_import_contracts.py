"""The package boundaries of pyproject.toml hold, and each contract really catches a breach.

`lint-imports` (import-linter) checks the `[tool.importlinter]` contracts; ruff's TID251 bans
`subprocess` and `os.environ` outside the modules listed in `per-file-ignores`. A contract
that nothing could break would pass vacuously, so each one is run on a copy of the package
with one forbidden import added, and must fail naming it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PACKAGE = ROOT / "src" / "codefactory"
ENTRY_POINTS = {"cli", "commands", "web", "demo", "factory"}


def _contracts() -> dict[str, dict[str, object]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return {c["id"]: c for c in config["tool"]["importlinter"]["contracts"]}


def _lint_imports(cwd: Path, *args: str, pythonpath: Path | None = None) -> tuple[int, str]:
    env = dict(os.environ)
    if pythonpath is not None:  # the copy shadows the installed (editable) package
        env["PYTHONPATH"] = str(pythonpath)
    done = subprocess.run(
        [str(BIN / "lint-imports"), "--no-cache", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def test_every_contract_is_kept() -> None:
    code, output = _lint_imports(ROOT)
    assert code == 0, output
    assert f"Contracts: {len(_contracts())} kept, 0 broken." in output


def test_every_top_level_module_is_under_the_entry_point_contract() -> None:
    """A new package cannot escape "nothing imports the entry points" by not being listed."""
    modules = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    modules |= {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    sources = _contracts()["entry-points"]["source_modules"]
    assert isinstance(sources, list)
    listed = {name.removeprefix("codefactory.") for name in sources}
    assert listed | ENTRY_POINTS == modules, sorted(modules ^ (listed | ENTRY_POINTS))


BREACHES = [
    ("loop-ports", "runs/loop.py", "import codefactory.store.runs"),
    ("loop-ports", "runs/loop.py", "import codefactory.verify.gate"),
    (
        "loop-ports",  # a TYPE_CHECKING import is a dependency too
        "runs/review.py",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import codefactory.package.risk",
    ),
    ("loop-ports", "runs/evidence.py", "import codefactory.sandbox.bubblewrap"),
    ("no-dispatch-cycle", "runs/report.py", "import codefactory.dispatch.scheduler"),
    ("audit-not-review", "audit/explain.py", "import codefactory.review.local_forge"),
    ("verify-not-sandbox-adapters", "verify/lent.py", "import codefactory.sandbox.bubblewrap"),
    ("entry-points", "store/port.py", "import codefactory.commands"),
    ("entry-points", "runs/intake.py", "import codefactory.factory"),
    ("domain-leaf", "domain.py", "import codefactory.config"),
]


@pytest.mark.parametrize(("contract", "module", "line"), BREACHES)
def test_a_forbidden_import_breaks_its_contract(
    tmp_path: Path, contract: str, module: str, line: str
) -> None:
    """The same config on a copy of the package with one forbidden import: the contract
    breaks and names the importer; the untouched copy keeps it (so the copy is what ran)."""
    src = tmp_path / "src"
    shutil.copytree(PACKAGE, src / "codefactory", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    code, output = _lint_imports(tmp_path, "--contract", contract, pythonpath=src)
    assert code == 0, output

    target = src / "codefactory" / module
    target.write_text(target.read_text(encoding="utf-8") + f"\n{line}\n", encoding="utf-8")
    code, output = _lint_imports(tmp_path, "--contract", contract, pythonpath=src)
    importer = "codefactory." + module.removesuffix(".py").replace("/", ".")
    assert code == 1, output
    assert "BROKEN" in output and importer in output, output


def _ruff(path: str, source: str) -> str:
    done = subprocess.run(
        [
            str(BIN / "ruff"),
            "check",
            "--no-cache",
            "--output-format",
            "concise",
            "--stdin-filename",
            path,
            "-",
        ],  # fmt: skip
        cwd=ROOT,
        input=source,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.stdout


PROCESS_AND_ENVIRONMENT = (
    "import os\nimport subprocess\n\n"
    'subprocess.run(["true"], check=True)\n'
    'HOME = os.environ.get("HOME")\n'
    'USER = os.getenv("USER")\n'
    'os.system("true")\n'
)


def test_subprocess_and_the_environment_are_banned_outside_their_modules() -> None:
    found = _ruff("src/codefactory/runs/probe.py", PROCESS_AND_ENVIRONMENT)
    banned = [line.split("`")[1] for line in found.splitlines() if "TID251" in line]
    assert banned == ["subprocess", "os.environ", "os.getenv", "os.system"], found


def test_the_process_boundary_may_run_processes() -> None:
    found = _ruff("src/codefactory/sandbox/supervise.py", PROCESS_AND_ENVIRONMENT)
    assert "TID251" not in found, found
