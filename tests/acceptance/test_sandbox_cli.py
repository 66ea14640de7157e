"""`codefactory sandbox run` and `sandbox images`, as a user calls them."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.acceptance.conftest import Cli
from tests.conftest import git, make_repo

FETCH = "import urllib.request as u; print(u.urlopen('http://models.test/', timeout=10).read())"


class Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[int]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    make_repo(tmp_path / "repo", {"requirements.txt": "idna==3.7\n", "app.py": "print(1)\n"})
    return tmp_path / "repo"


def test_run_prints_the_output_and_exits_with_the_commands_code(cli: Cli, repo: Path) -> None:
    code = "import idna, os; print(idna.__version__, os.getcwd()); raise SystemExit(3)"
    ok = cli("sandbox", "run", "--repo", str(repo), "--", "python", "-c", code)
    assert ok.returncode == 3, ok.stderr
    assert ok.stdout == "3.7 /workspace\n"
    assert "egress allowed: pypi.org:443" in ok.stderr  # the image was built in the setup phase


def test_a_limit_hit_and_a_sandbox_that_cannot_start_have_their_own_codes(
    cli: Cli, repo: Path, tmp_path: Path
) -> None:
    slow = cli("sandbox", "run", "--repo", str(repo), "--no-setup", "--timeout", "0.5",
               "--", "sleep", "5")  # fmt: skip
    assert slow.returncode == 124
    assert "limit hit: wall-clock" in slow.stderr
    (tmp_path / "empty").mkdir()
    cli.env["CODEFACTORY_SANDBOX__SEARCH_PATH"] = str(tmp_path / "empty")
    missing = cli("sandbox", "run", "--repo", str(repo), "--", "true")
    assert missing.returncode == 125
    assert "`bwrap` is not installed" in missing.stderr


def test_allow_host_reaches_only_that_host_and_reports_each_attempt(
    cli: Cli, repo: Path, server: int
) -> None:
    cli.env["CODEFACTORY_SANDBOX__EGRESS__RESOLVE"] = json.dumps(
        {"models.test": f"127.0.0.1:{server}"}
    )
    result = cli("sandbox", "run", "--repo", str(repo), "--no-setup", "--json",
                 "--allow-host", "models.test", "--", "python3", "-c", FETCH)  # fmt: skip
    out = json.loads(result.stdout)
    assert out["exit_code"] == 0 and out["stdout"] == "b'hello'\n"
    engine = [(e["host"], e["allowed"]) for e in out["egress"] if e["phase"] == "engine"]
    assert engine == [("models.test", True)]  # the rest: the image build's, in setup
    denied = cli("sandbox", "run", "--repo", str(repo), "--no-setup", "--", "python3", "-c", FETCH)
    assert denied.returncode == 1 and "URLError" in denied.stderr


def test_images_are_listed_and_stale_ones_pruned(cli: Cli, repo: Path) -> None:
    cli("sandbox", "run", "--repo", str(repo), "--", "true", check=True)
    listed = cli.json("sandbox", "images")["images"]
    assert sorted((i["kind"], i["current"], i["in_use"]) for i in listed) == [
        ("env", True, False),
        ("tree", True, False),
    ]
    (repo / "requirements.txt").write_text("idna==3.6\n")
    git(repo, "commit", "-qam", "pin another version")
    pruned = cli.json("sandbox", "images", "--prune")
    assert sorted(i["kind"] for i in pruned["removed"]) == ["env", "tree"]
    assert pruned["images"] == []
