"""A small npm project through the real sandbox: a locked install with lifecycle scripts off,
its own tests (passing, then failing on a seeded bug), its own ESLint (an unused variable in a
changed file, even one an ignore pattern names), and the gate's checks per ecosystem.

The lock file is generated once by the host's npm and cached in ~/.cache/codefactory-tests;
the setup phase downloads through the sandbox's egress proxy from registry.npmjs.org.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from codefactory.domain import Change
from codefactory.projects.model import Ecosystem
from codefactory.sandbox.bubblewrap import BubblewrapSandbox, BubblewrapWorkspace
from codefactory.sandbox.port import Phase
from codefactory.sandbox.setup import install_dependencies
from codefactory.verify.diff import with_base
from codefactory.verify.eslint import EslintCheck
from codefactory.verify.gate import Gate
from codefactory.verify.js_tests import JsTestsCheck
from codefactory.verify.lint import RuffCheck
from codefactory.verify.settings import VerifySettings
from codefactory.verify.workspace_project import detect_workspace
from tests.conftest import make_repo

pytestmark = pytest.mark.usefixtures("bwrap_available")

CACHE = Path.home() / ".cache" / "codefactory-tests"
PACKAGE_JSON = {
    "name": "cf-js-sample",
    "version": "1.0.0",
    "private": True,
    "scripts": {
        "test": "node --test",
        # must never run: setup installs with lifecycle scripts off (its mark goes to /env,
        # the one folder the setup phase writes that the check phase sees)
        "postinstall": "node -e \"require('fs').writeFileSync('/env/POSTINSTALL_RAN', '')\"",
    },
    "dependencies": {"is-number": "7.0.0"},
    "devDependencies": {"eslint": "9.39.1"},
}
EVEN = (
    "const isNumber = require('is-number');\n\n"
    "function isEven(n) {\n  return isNumber(n) && Number(n) % 2 === 0;\n}\n\n"
    "module.exports = { isEven };\n"
)
FILES = {
    "package.json": json.dumps(PACKAGE_JSON, indent=2) + "\n",
    "eslint.config.mjs": (
        'export default [\n  { ignores: ["generated/**"] },\n'
        '  { files: ["**/*.js"], languageOptions: { sourceType: "commonjs" },\n'
        '    rules: { "no-unused-vars": "error" } },\n];\n'
    ),
    "src/even.js": EVEN,
    "src/legacy.js": "const old = 1;\n\nmodule.exports = {};\n",
    "test/even.test.js": (
        "const test = require('node:test');\nconst assert = require('node:assert');\n"
        "const { isEven } = require('../src/even');\n\n"
        "test('even numbers', () => {\n  assert.ok(isEven(4));\n  assert.ok(!isEven(3));\n"
        "  assert.ok(!isEven('x'));\n});\n"
    ),
    ".gitignore": "node_modules/\n",
}


def npm_lock(package_json: str) -> str:
    """The package-lock.json npm writes for `package_json`, generated once and cached."""
    key = hashlib.sha256(package_json.encode()).hexdigest()[:16]
    cached = CACHE / "npm-locks" / key / "package-lock.json"
    if not cached.is_file():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is not installed on the host: the lock file cannot be generated")
        work = cached.parent / "work"
        work.mkdir(parents=True, exist_ok=True)
        (work / "package.json").write_text(package_json)
        subprocess.run(
            [npm, "install", "--package-lock-only", "--ignore-scripts", "--no-audit", "--no-fund"],
            cwd=work,
            check=True,
            capture_output=True,
            timeout=300,
        )
        (work / "package-lock.json").replace(cached)
        shutil.rmtree(work)
    return cached.read_text()


@pytest.fixture(scope="module")
def installed(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Path, BubblewrapWorkspace]]:
    """One workspace of the sample project, set up once (npm ci through the egress proxy)."""
    root = tmp_path_factory.mktemp("js")
    files = FILES | {"package-lock.json": npm_lock(FILES["package.json"])}
    make_repo(root / "repo", files)
    cache = CACHE / "sandbox-cache"
    cache.mkdir(parents=True, exist_ok=True)
    sandbox = BubblewrapSandbox(root / "work", cache)
    workspace = sandbox.provision(repo=root / "repo", commit="HEAD", run_id="js-project")
    try:
        install_dependencies(workspace)
        yield root / "repo", workspace
    finally:
        workspace.destroy()


def restore(workspace: BubblewrapWorkspace, *paths: str) -> None:
    for path in paths:
        if path in FILES:
            workspace.write_file(path, FILES[path].encode())
        else:
            workspace.exec(["/usr/bin/rm", "-f", path], phase=Phase.ENGINE)


def test_setup_installs_the_lock_with_lifecycle_scripts_off(
    installed: tuple[Path, BubblewrapWorkspace],
) -> None:
    _, workspace = installed
    listing = workspace.exec(
        [
            "/usr/bin/sh",
            "-c",
            "ls node_modules; ls node_modules/.bin; test ! -e /env/POSTINSTALL_RAN",
        ],
        phase=Phase.CHECK,
    )
    assert listing.exit_code == 0, listing.stderr  # the postinstall script never ran
    assert "is-number" in listing.stdout.split()
    assert "eslint" in listing.stdout.split()
    # the installed packages are read-only to the check phase
    write = workspace.exec(["/usr/bin/touch", "node_modules/x"], phase=Phase.CHECK)
    assert write.exit_code != 0


def test_the_repositorys_tests_pass_then_catch_a_seeded_bug(
    installed: tuple[Path, BubblewrapWorkspace],
) -> None:
    _, workspace = installed
    check = JsTestsCheck(timeout_s=120)
    passed = check.run(workspace, workspace.changes())
    assert passed.passed, passed.summary
    assert "`npm test` passed" in passed.summary
    workspace.write_file("src/even.js", EVEN.replace("=== 0", "=== 1").encode())
    try:
        failed = check.run(workspace, workspace.changes())
    finally:
        restore(workspace, "src/even.js")
    assert not failed.passed
    [finding] = failed.findings
    assert finding.rule == "tests-failed"
    assert "`npm test` exited 1: the tests failed" in failed.summary
    assert "# fail 1" in failed.summary  # the output tail, in the summary and the evidence
    assert "# fail 1" in failed.evidence


def test_eslint_finds_an_unused_variable_even_behind_an_ignore_pattern(
    installed: tuple[Path, BubblewrapWorkspace],
) -> None:
    _, workspace = installed
    workspace.write_file("src/extra.js", b"const unused = 1;\n\nmodule.exports = {};\n")
    workspace.write_file("generated/gen.js", b"const hidden = 2;\n\nmodule.exports = {};\n")
    # a modified file keeps its pre-existing finding: reported, not blocking
    workspace.write_file("src/legacy.js", FILES["src/legacy.js"].encode() + b"// touched\n")
    try:
        change = workspace.changes()
        # the base versions, as the gate reads them from the base commit
        base = {p: FILES[p].encode() if p in FILES else None for p in change.paths}
        eslint = EslintCheck(timeout_s=120).run(workspace, with_base(change, base))
        [ruff] = Gate([RuffCheck()]).run(workspace, change)
    finally:
        restore(workspace, "src/extra.js", "generated/gen.js", "src/legacy.js")
    assert ruff.passed and ruff.summary.startswith("not applicable: the lint check serves Python")
    assert not eslint.passed, eslint.summary
    found = {(f.path, f.rule, f.blocking) for f in eslint.findings}
    assert found == {
        ("src/extra.js", "no-unused-vars", True),
        ("generated/gen.js", "no-unused-vars", True),
        ("src/legacy.js", "no-unused-vars", False),
    }
    assert eslint.summary.endswith("2 new")
    assert '"name": "eslint"' in eslint.evidence and '"version": "9.39.1"' in eslint.evidence


def test_a_repository_with_both_ecosystems_gets_both_sets_of_checks(
    installed: tuple[Path, BubblewrapWorkspace],
) -> None:
    repo, workspace = installed
    workspace.write_file("tool.py", b"import os\n")
    workspace.write_file("src/extra.js", b"const unused = 1;\n")
    try:
        assert detect_workspace(workspace).ecosystems == {Ecosystem.PYTHON, Ecosystem.JAVASCRIPT}
        gate = Gate([RuffCheck(), EslintCheck(timeout_s=120)])
        ruff, eslint = gate.run(workspace, workspace.changes())
    finally:
        restore(workspace, "tool.py", "src/extra.js")
    assert [f.rule for f in ruff.findings] == ["F401"]
    assert [f.rule for f in eslint.findings] == ["no-unused-vars"]


def test_the_repository_config_skips_lint_and_adds_its_own_check(
    installed: tuple[Path, BubblewrapWorkspace],
) -> None:
    _, workspace = installed
    config = (
        '[checks]\nskip = ["lint"]\n'
        'add = [{ name = "no-todo", command = ["/usr/bin/sh", "-c", '
        '"! /usr/bin/grep -rn TODO src"] }]\n'
    )
    workspace.write_file(".codefactory/config.toml", config.encode())
    workspace.write_file("src/extra.js", b"const unused = 1; // TODO\n")
    try:
        gate = Gate([EslintCheck(timeout_s=120)], settings=VerifySettings(stop_early=False))
        eslint, added = gate.run(workspace, Change(files=workspace.changes().files))
    finally:
        restore(workspace, ".codefactory/config.toml", "src/extra.js")
    assert eslint.summary.startswith("skipped by repository config (.codefactory/config.toml")
    assert "not passed" in eslint.summary and not eslint.findings
    assert added.check == "repo:no-todo" and not added.passed
    assert "src/extra.js:1:const unused = 1; // TODO" in added.findings[0].message


SMALL = {
    "name": "cf-js-small",
    "version": "1.0.0",
    "private": True,
    "scripts": PACKAGE_JSON["scripts"],
    "dependencies": {"is-number": "7.0.0"},
}
LOCK_COMMANDS = {
    "pnpm": ("pnpm-lock.yaml", ["pnpm", "install", "--lockfile-only", "--ignore-scripts"]),
    "yarn": ("yarn.lock", ["yarn", "install", "--ignore-scripts", "--mode=update-lockfile"]),
    "berry": ("yarn.lock", ["yarn", "install", "--mode=update-lockfile"]),
}
BERRY = "yarn@4.5.0"
HOSTILE = {
    # each would run the repository's code during the install: none may (a mark is left in
    # /env, the one folder the setup phase writes that the check phase sees)
    ".pnpmfile.cjs": "try { require('fs').writeFileSync('/env/PNPMFILE_RAN', '') } catch {}\n",
    ".yarnrc": 'yarn-path "./tools/evil.js"\n',
    # (the check phase's `yarn run test` is js_tests' to guard: exit 0 keeps this test on setup)
    "tools/evil.js": "try { require('fs').writeFileSync('/env/YARN_PATH_RAN', '') } catch {}\n",
    ".npmrc": "ignore-scripts=false\n",
    ".corepack.env": "COREPACK_NPM_REGISTRY=https://registry.invalid\n",
}


def corepack_lock(package_json: str, manager: str) -> str:
    """The lock file pnpm, Yarn 1 (corepack's pinned default) or Yarn Berry (the
    `packageManager` of `package_json`) writes, generated once."""
    lock_file, command = LOCK_COMMANDS[manager]
    key = hashlib.sha256((package_json + manager).encode()).hexdigest()[:16]
    cached = CACHE / "corepack-locks" / key / lock_file
    if not cached.is_file():
        corepack = shutil.which("corepack")
        if corepack is None:
            pytest.skip("corepack is not installed on the host: the lock cannot be generated")
        work = cached.parent / "work"
        work.mkdir(parents=True, exist_ok=True)
        (work / "package.json").write_text(package_json)
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(work),
            "COREPACK_HOME": str(CACHE / "corepack"),
            "COREPACK_ENABLE_DOWNLOAD_PROMPT": "0",
            "COREPACK_DEFAULT_TO_LATEST": "0",
            "NODE_EXTRA_CA_CERTS": "/etc/ssl/certs/ca-certificates.crt",
            "COREPACK_NPM_REGISTRY": "https://registry.npmjs.org",
        }
        subprocess.run(
            [corepack, *command],
            cwd=work,
            env=env,
            check=True,
            capture_output=True,
            timeout=300,
        )
        (work / lock_file).replace(cached)
        shutil.rmtree(work)
    return cached.read_text()


@pytest.mark.parametrize("manager", ["pnpm", "yarn", "berry"])
def test_pnpm_and_yarn_install_through_corepack_and_run_the_tests_offline(
    tmp_path: Path, manager: str
) -> None:
    pinned = {"packageManager": BERRY} if manager == "berry" else {}
    package_json = json.dumps(SMALL | pinned, indent=2) + "\n"
    lock_file, _ = LOCK_COMMANDS[manager]
    shown = "yarn" if manager == "berry" else manager
    files = {
        "package.json": package_json,
        lock_file: corepack_lock(package_json, manager),
        "src/even.js": EVEN,
        "test/even.test.js": FILES["test/even.test.js"],
        **HOSTILE,
    }
    make_repo(tmp_path / "repo", files)
    sandbox = BubblewrapSandbox(tmp_path / "work", CACHE / "sandbox-cache")
    workspace = sandbox.provision(repo=tmp_path / "repo", commit="HEAD", run_id=shown)
    try:
        install_dependencies(workspace)
        listing = workspace.exec(
            ["/usr/bin/sh", "-c", "ls -A node_modules; ls -A /env | grep _RAN; test $? = 1"],
            phase=Phase.CHECK,
        )
        result = JsTestsCheck(timeout_s=120).run(workspace, workspace.changes())
    finally:
        workspace.destroy()
    # neither the postinstall script nor a pnpmfile, yarn-path or .corepack.env took effect
    assert listing.exit_code == 0, listing.stdout + listing.stderr
    assert "is-number" in listing.stdout.split()
    if manager == "pnpm":
        assert ".pnpm" in listing.stdout.split()  # its relative links resolve read-only
    assert result.passed, result.summary
    assert result.summary.startswith(f"`corepack {shown} run test` passed")
