"""Drive the factory through its command line, as a user does: one data folder per run.

Used by `bench_real_repos.py` and `tests/realrepos/`: `codefactory sandbox run` for the setup
phase (an image is built on first use, reused after) and `codefactory verify` for the gate.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CLI = Path(sys.executable).parent / "codefactory"
TRUE = "/usr/bin/true"
TEST_CHECKS = frozenset({"tests", "js-tests"})
"""The gate's checks that run a project's own tests (Python, JavaScript)."""


@dataclass(frozen=True, kw_only=True)
class Timed:
    """One CLI call: its exit code, output and wall-clock seconds."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def json(self) -> Any:
        """stdout parsed as JSON; ValueError (with the call and its stderr) when it is not."""
        try:
            return json.loads(self.stdout)
        except json.JSONDecodeError as err:
            raise ValueError(
                f"`codefactory {' '.join(self.args)}` exited {self.returncode} without JSON: "
                f"{self.stderr.strip()[-2000:]}"
            ) from err


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """What `codefactory verify --json` said about one working tree."""

    passed: bool
    returncode: int
    seconds: float
    blocking: tuple[str, ...]
    """`check:rule` of each blocking finding."""
    failed_checks: tuple[str, ...]
    """`check: summary` of each check that did not pass."""
    tests_summary: str = ""
    """The tests check's own summary (what ran, or why it did not)."""
    error: str = ""
    """stderr when the gate could not start (exit 2) or printed no verdict."""

    @property
    def blocked_by_tests(self) -> bool:
        return not self.passed and any(b.split(":")[0] in TEST_CHECKS for b in self.blocking)

    @property
    def blocked_only_by_tests(self) -> bool:
        """Blocked, and every blocking finding is a test check's."""
        return self.blocked_by_tests and all(b.split(":")[0] in TEST_CHECKS for b in self.blocking)

    def reason(self) -> str:
        """One line: why it did not pass (or the gate's error)."""
        if self.error:
            return self.error
        if self.passed:
            return f"passed; tests: {self.tests_summary}"
        return "; ".join(self.failed_checks)[:600]


@dataclass
class FactoryCli:
    """The `codefactory` console script over one data folder (`--data-dir`)."""

    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    timeout_s: float = 900.0

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> Timed:
        """Run `codefactory --data-dir D ARGS`; never raises on a non-zero exit."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("CODEFACTORY_")}
        started = time.perf_counter()
        result = subprocess.run(
            [str(CLI), "--data-dir", str(self.data_dir), *args],
            capture_output=True,
            text=True,
            env={**base, "CI": "true", **self.env, **(env or {})},
            timeout=self.timeout_s,
            check=False,
        )
        return Timed(
            args=args,
            returncode=result.returncode,
            stdout=result.stdout,
            stderr=result.stderr,
            seconds=time.perf_counter() - started,
        )

    def sandbox(self, repo: Path, *command: str, setup: bool = True, images: bool = True) -> Timed:
        """`codefactory sandbox run --json` of `command` over `repo` (its setup phase first
        unless `setup` is False); `images=False` turns pre-warmed images off."""
        flags = () if setup else ("--no-setup",)
        env = {} if images else {"CODEFACTORY_SANDBOX__IMAGES__ENABLED": "false"}
        return self("sandbox", "run", "--repo", str(repo), "--json", *flags, "--", *command,
                    env=env)  # fmt: skip

    def verify(self, repo: Path) -> Verdict:
        """`codefactory verify --json` of `repo`'s working tree against HEAD."""
        timed = self("verify", "--repo", str(repo), "--json")
        try:
            verdict = timed.json()
        except ValueError as err:
            return Verdict(passed=False, returncode=timed.returncode, seconds=timed.seconds,
                           blocking=(), failed_checks=(), error=str(err))  # fmt: skip
        checks = verdict.get("checks", [])
        return Verdict(
            passed=bool(verdict["passed"]) and timed.returncode == 0,
            returncode=timed.returncode,
            seconds=timed.seconds,
            blocking=tuple(
                f"{c['check']}:{f['rule']}" for c in checks for f in c["findings"] if f["blocking"]
            ),
            failed_checks=tuple(f"{c['check']}: {c['summary']}" for c in checks if not c["passed"]),
            tests_summary=" / ".join(c["summary"] for c in checks if c["check"] in TEST_CHECKS),
        )


def data_dir(root: Path, packages: Path) -> Path:
    """A fresh data folder under `root` whose package cache is `packages` (kept between runs,
    so a cold setup measures installing, not downloading, after the first run)."""
    root.mkdir(parents=True, exist_ok=False)
    packages.mkdir(parents=True, exist_ok=True)
    (root / "cache").symlink_to(packages, target_is_directory=True)
    return root


_PYTHON_VERSIONS = (
    "import importlib.metadata as m, json, sys\n"
    "def v(n):\n"
    "    try:\n"
    "        return m.version(n)\n"
    "    except m.PackageNotFoundError:\n"
    "        return None\n"
    "print(json.dumps({n: v(n) for n in sys.argv[1:]}))\n"
)
_NODE_VERSIONS = (
    "const fs = require('fs'); const out = {};"
    "for (const n of process.argv.slice(1)) {"
    " try { out[n] = JSON.parse(fs.readFileSync('node_modules/' + n + '/package.json')).version; }"
    " catch (e) { out[n] = null; } }"
    "console.log(JSON.stringify(out));"
)


def installed_versions(
    cli: FactoryCli, repo: Path, ecosystem: str, names: list[str]
) -> dict[str, str | None]:
    """The version of each of `names` installed by `repo`'s setup phase (None when absent),
    read inside the sandbox: `/env/bin/python`'s distributions for `PyPI`, the workspace's
    `node_modules` for `npm`. Raises ValueError when the probe itself fails."""
    if ecosystem == "npm":
        timed = cli.sandbox(repo, "/usr/bin/node", "-e", _NODE_VERSIONS, *names)
    else:
        timed = cli.sandbox(repo, "/env/bin/python", "-c", _PYTHON_VERSIONS, *names)
    result = timed.json()
    if result["exit_code"] != 0:
        raise ValueError(f"version probe exited {result['exit_code']}: {result['stderr'][-1000:]}")
    versions: dict[str, str | None] = json.loads(result["stdout"])
    return versions


def osv_archives(root: Path) -> Path:
    """`root/<ecosystem>/all.zip` laid out as OSV's bucket serves them, from the real records
    the tests ship (`tests/osv_archives.py`: the PyPA database, real npm advisories); returns
    `root`, ready for `serve`."""
    from tests.osv_archives import NPM_RECORDS, pypi_archive, write_archive

    (root / "PyPI").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(pypi_archive(), root / "PyPI" / "all.zip")
    write_archive(root / "npm" / "all.zip", NPM_RECORDS)
    return root


def sync_advisories(cli: FactoryCli, url: str) -> Timed:
    """`codefactory advisories sync --from URL` into the CLI's data folder; raises ValueError
    (with its stderr) when the sync fails, since every verdict after it would be blocked."""
    timed = cli("advisories", "sync", "--from", url)
    if timed.returncode != 0:
        raise ValueError(f"advisories sync from {url} failed: {timed.stderr.strip()[-1000:]}")
    return timed


def synced_advisories(folder: Path) -> Path:
    """Sync real OSV data (PyPI and npm, `osv_archives`) from a loopback server into a data
    folder under `folder`, once; returns the index to hand every other data folder through
    `CODEFACTORY_ADVISORIES_DIR` (so each run judges against fresh data, as a user's would
    after `codefactory advisories sync`)."""
    from tests.osv_archives import serve

    root = osv_archives(folder / "osv")
    cli = FactoryCli(folder / "advisories-data")
    with serve(root) as url:
        sync_advisories(cli, url)
    index = cli.data_dir / "advisories" / "osv-index.json"
    if not index.is_file():
        raise ValueError(f"advisories sync wrote no index at {index}")
    return index


_PYTHON_DISTRIBUTIONS = (
    "import importlib.metadata as m, json\n"
    "print(json.dumps(sorted([d.metadata['Name'], d.version] for d in m.distributions())))\n"
)


def installed_distributions(cli: FactoryCli, repo: Path) -> dict[str, str]:
    """Every distribution in the sandbox's `/env` after `repo`'s setup phase: PEP 503
    normalised name → version. Raises ValueError when the probe fails."""
    result = cli.sandbox(repo, "/env/bin/python", "-c", _PYTHON_DISTRIBUTIONS).json()
    if result["exit_code"] != 0:
        raise ValueError(f"distribution probe exited {result['exit_code']}: {result['stderr']}")
    return {canonical(name): version for name, version in json.loads(result["stdout"])}


def canonical(name: str) -> str:
    """A distribution name normalised as PEP 503 says (`Foo_Bar` → `foo-bar`)."""
    return re.sub(r"[-_.]+", "-", name).lower()
