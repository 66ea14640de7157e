"""`codefactory verify` and `codefactory advisories import`, as a user runs them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.acceptance.conftest import Cli
from tests.conftest import SHARED_FIXTURES, make_repo

REPO = {
    "requirements-dev.txt": "pytest\n",
    "requirements.txt": "idna==3.7\n",
    "svc/__init__.py": "",
    "svc/calc.py": "def add(a, b):\n    return a + b\n",
    "tests/test_calc.py": (
        "from svc.calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n"
    ),
}


def _one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


def test_verify_blocks_what_the_working_tree_introduced_and_passes_a_clean_change(
    cli: Cli, tmp_path: Path
) -> None:
    repo = tmp_path / "svc-repo"
    make_repo(repo, REPO)
    calc = repo / "svc" / "calc.py"
    calc.write_text(
        "import subprocess\n\n\ndef add(a, b):\n    return a + b\n\n\n"
        "def run(cmd):\n    return subprocess.call(cmd, shell=True)\n"
    )
    (repo / ".github" / "workflows").mkdir(parents=True)
    (repo / ".github" / "workflows" / "ci.yml").write_text("on: push\n")  # untracked, not ignored

    blocked = cli("verify", "--repo", str(repo), "--json", "--evidence", str(tmp_path / "ev"))

    assert blocked.returncode == 1, blocked.stderr
    verdict = json.loads(blocked.stdout)
    assert not verdict["passed"]
    assert sorted(verdict["changed"]) == [".github/workflows/ci.yml", "svc/calc.py"]
    blocking = {
        (f["check"], f["rule"]) for c in verdict["checks"] for f in c["findings"] if f["blocking"]
    }
    assert blocking == {("diff_policy", "path-out-of-scope"), ("sast", "B602")}
    tests = next(c for c in verdict["checks"] if c["check"] == "tests")
    assert tests["summary"].startswith("not run:")
    sarif = json.loads((tmp_path / "ev" / "sast.sarif").read_text())
    assert {r["baselineState"] for r in sarif["runs"][0]["results"]} == {"new"}
    # A file name is the repository's text: printed inert, neither a terminal sequence (an
    # OSC retitling the window) nor Rich markup hiding part of it.
    hostile = repo / ".github" / "workflows" / "a\x1b]0;T\x07[conceal]b.yml"
    (repo / ".github" / "workflows" / "ci.yml").rename(hostile)
    printed = cli("verify", "--repo", str(repo)).stdout
    assert "\x1b" not in printed and "\x07" not in printed
    assert r".github/workflows/a\x1b]0;T\x07[conceal]b.yml" in printed.replace("\n", "")

    shutil.rmtree(repo / ".github")
    calc.write_text("def add(a, b):\n    return b + a\n")
    clean = cli("verify", "--repo", str(repo))

    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "nothing blocks" in clean.stdout
    assert "svc/calc.py::add changed: 1 test(s) ran it" in clean.stdout.replace("\n", "")


def test_verify_outside_a_repository_is_a_clear_error(cli: Cli, tmp_path: Path) -> None:
    result = cli("verify", "--repo", str(tmp_path))
    assert result.returncode == 2
    assert "not a git repository" in _one_line_error(result.stderr)


def test_verify_never_reads_a_host_file_through_a_folder_replaced_by_a_link(
    cli: Cli, tmp_path: Path
) -> None:
    """The reported bug: the change replaced `config/` with a link to a host folder, and the
    key file behind it ended up in the change and the evidence."""
    secret = "-----BEGIN OPENSSH PRIVATE KEY----- AAAAC3NzaC1lZDI1NTE5AAAAIKEYKEYKEY"
    keys = tmp_path / "factory-keys"
    keys.mkdir()
    (keys / "agent_ed25519").write_text(secret + "\n")
    repo = tmp_path / "linked-repo"
    make_repo(repo, {"config/agent_ed25519": "placeholder\n", "svc/__init__.py": ""})
    shutil.rmtree(repo / "config")
    (repo / "config").symlink_to(keys, target_is_directory=True)

    result = cli("verify", "--repo", str(repo), "--json", "--evidence", str(tmp_path / "ev"))

    assert result.returncode in (0, 1), result.stderr
    assert json.loads(result.stdout)["changed"] == ["config/agent_ed25519"]  # deleted
    evidence = "".join(p.read_text() for p in (tmp_path / "ev").glob("*"))
    assert evidence, "the gate wrote its evidence"
    assert secret not in result.stdout + result.stderr + evidence


def test_imported_advisories_are_used_by_default_and_a_bad_import_is_refused(
    cli: Cli, tmp_path: Path
) -> None:
    mirror = tmp_path / "mirror"
    for package in ("idna", "jinja2"):
        shutil.copytree(SHARED_FIXTURES / "osv-pypi" / "vulns" / package, mirror / package)
    report = cli.json("advisories", "import", str(mirror))
    assert report["pypi_records"] > 5
    shown = cli.json("advisories", "show")
    assert shown["source"].endswith("osv-index.json")

    (mirror / "jinja2" / "BAD.json").write_text('{"id": "BAD", "affected": {}}')
    refused = cli("advisories", "import", str(mirror))
    assert refused.returncode == 1
    assert "BAD.json" in _one_line_error(refused.stderr)
    assert cli.json("advisories", "show")["manifest"]["digest"] == report["digest"]

    repo = tmp_path / "deps"
    make_repo(repo, REPO)
    # a lock file resolving jinja2 (no install needed: the gate reads it, setup does not)
    (repo / "uv.lock").write_text('[[package]]\nname = "jinja2"\nversion = "2.10"\n')
    result = cli("verify", "--repo", str(repo), "--json")
    verdict = json.loads(result.stdout)
    sca = next(c for c in verdict["checks"] if c["check"] == "sca")
    introduced = {f["rule"] for f in sca["findings"] if f["baseline_state"] == "new"}
    assert "PYSEC-2019-217" in introduced  # only in the imported database, not the shipped one
    assert result.returncode == 1
    audit = cli.json("audit", "verify")
    assert audit["ok"]
