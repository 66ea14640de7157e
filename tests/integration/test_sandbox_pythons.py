"""The Python a project asks for, installed by uv from a configured download list and run in the
sandbox; the factory's scanners built with it; installed JavaScript packages shown read-only.

The archive is a python-build-standalone-style `install_only` tarball made once from this
machine's pyenv CPython 3.12.1 (its library path made relative, as python-build-standalone's
are), cached in ~/.cache/codefactory-tests and served with its download list from loopback.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import threading
from collections import Counter
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from codefactory.sandbox.bubblewrap import BubblewrapSandbox, BubblewrapWorkspace
from codefactory.sandbox.images import ImageCache
from codefactory.sandbox.layout import ENV_DIR, NODE_MODULES, SCANNERS_ENV
from codefactory.sandbox.port import Phase
from codefactory.sandbox.pythons import (
    SANDBOX_PYTHONS,
    PythonInterpreters,
    PythonUnavailable,
)
from tests.conftest import make_repo

pytestmark = pytest.mark.usefixtures("bwrap_available")

PYENV_312 = Path("/root/.pyenv/versions/3.12.1")
CACHE = Path.home() / ".cache" / "codefactory-tests" / "pythons"
ARCHIVE = "cpython-3.12.1-x86_64-unknown-linux-gnu-install_only.tar.gz"
UNNEEDED = ("lib/python3.12/test/", "lib/python3.12/idlelib/", "lib/python3.12/tkinter/",
            "lib/python3.12/turtledemo/", "lib/python3.12/site-packages/", "share/")  # fmt: skip
PEP_695 = (
    "import subprocess\n\n\ndef run[T](command: T) -> T:\n"
    "    subprocess.call(command, shell=True)\n    return command\n"
)
"""PEP 695 generics (3.12), with a finding inside that only a scan that parsed them sees."""


def _install_only_archive() -> Path:
    """The archive, built once: `python/` holding the build, every ELF file's absolute
    RUNPATH into pyenv rewritten in place to `$ORIGIN/../lib` (shorter, NUL-padded)."""
    archive = CACHE / ARCHIVE
    if archive.is_file():
        return archive
    CACHE.mkdir(parents=True, exist_ok=True)
    old = str(PYENV_312 / "lib").encode()
    new = b"$ORIGIN/../lib".ljust(len(old), b"\0")
    partial_file = archive.with_suffix(f".{threading.get_ident()}.partial")
    with tarfile.open(partial_file, "w:gz", compresslevel=1) as tar:
        for path in sorted(PYENV_312.rglob("*")):
            relative = path.relative_to(PYENV_312).as_posix()
            if "__pycache__" in relative or f"{relative}/".startswith(UNNEEDED):
                continue
            info = tar.gettarinfo(str(path), arcname=f"python/{relative}")
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if not info.isfile():
                tar.addfile(info)
                continue
            data = path.read_bytes()
            if data.startswith(b"\x7fELF"):
                data = data.replace(old, new)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    partial_file.rename(archive)
    return archive


class _Server:
    """A loopback HTTP server of one folder that counts the requests for each path."""

    def __init__(self, folder: Path) -> None:
        self.requests: Counter[str] = Counter()
        counts = self.requests

        class Handler(SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                counts[self.path] += 1
                super().do_GET()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=folder))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _downloads(url: str, sha256: str) -> dict[str, Any]:
    """uv's downloads list (`--python-downloads-json-url`) with the one 3.12.1 archive."""
    return {
        "cpython-3.12.1-linux-x86_64-gnu": {
            "name": "cpython",
            "arch": {"family": "x86_64", "variant": None},
            "os": "linux",
            "libc": "gnu",
            "major": 3,
            "minor": 12,
            "patch": 1,
            "prerelease": "",
            "url": url,
            "sha256": sha256,
            "variant": None,
        }
    }


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Server]:
    """The archive, `downloads.json` (its true SHA-256) and `tampered.json` (a wrong one)."""
    if not PYENV_312.is_dir():
        pytest.skip(f"no CPython 3.12.1 build to package at {PYENV_312}")
    archive = _install_only_archive()
    folder = tmp_path_factory.mktemp("mirror")
    (folder / ARCHIVE).symlink_to(archive)
    server = _Server(folder)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    lists = {"downloads.json": digest, "tampered.json": "0" * 64}
    for name, sha256 in lists.items():
        (folder / name).write_text(json.dumps(_downloads(f"{server.url}/{ARCHIVE}", sha256)))
    yield server
    server.close()


def _interpreters(root: Path, mirror: _Server, listing: str = "downloads.json") -> Any:
    return PythonInterpreters(
        root,
        host_python="/usr/bin/python3",
        downloads_json_url=f"{mirror.url}/{listing}",
        mirror=None,
    )


def test_a_wanted_python_is_installed_once_and_is_the_sandbox_s(
    tmp_path: Path, mirror: _Server
) -> None:
    interpreters = _interpreters(tmp_path / "pythons", mirror)
    before = mirror.requests[f"/{ARCHIVE}"]
    found = interpreters.resolve("3.12", source=".python-version")
    assert found.version == "3.12.1"
    assert found.sandbox_path == (
        f"{SANDBOX_PYTHONS}/cpython-3.12.1-linux-x86_64-gnu/bin/python3.12"
    )
    assert (tmp_path / "pythons" / "cpython-3.12.1-linux-x86_64-gnu/bin/python3.12").is_file()
    assert mirror.requests[f"/{ARCHIVE}"] == before + 1
    # asked again, by this factory or another process on the same folder: no download
    assert interpreters.resolve(">=3.12,<3.13", source="pyproject.toml") == found
    assert _interpreters(tmp_path / "pythons", mirror).resolve("3.12.1", source="x") == found
    assert mirror.requests[f"/{ARCHIVE}"] == before + 1
    # what the host has needs nothing installed
    assert interpreters.resolve(">=3.8", source="pyproject.toml").sandbox_path == (
        "/usr/bin/python3"
    )

    # the image of a project that asks for 3.12: its /env and its scanners are built with it
    images = ImageCache(tmp_path / "images", python="/usr/bin/python3", interpreters=interpreters)
    sandbox = BubblewrapSandbox(
        tmp_path / "work", tmp_path / "cache", images=images, interpreters=interpreters
    )
    make_repo(tmp_path / "repo", {"generic.py": PEP_695, ".python-version": "3.12\n"})
    workspace = sandbox.provision(repo=tmp_path / "repo", commit="HEAD", run_id="py312")
    try:
        _check_the_environment(workspace)
    finally:
        workspace.destroy()
        sandbox.close()
    assert mirror.requests[f"/{ARCHIVE}"] == before + 1


def _check_the_environment(workspace: BubblewrapWorkspace) -> None:
    version = "import sys; print('%d.%d.%d' % sys.version_info[:3])"
    for phase in (Phase.ENGINE, Phase.CHECK):
        ran = workspace.exec([f"{ENV_DIR}/bin/python", "-c", version], phase=phase)
        assert (ran.exit_code, ran.stdout.strip()) == (0, "3.12.1"), ran.stderr
        written = workspace.exec(["/usr/bin/touch", f"{SANDBOX_PYTHONS}/x"], phase=phase)
        assert written.exit_code != 0 and "Read-only" in written.stderr
    scan = [f"{SCANNERS_ENV}/bin/bandit", "-f", "json", "-q", "generic.py"]
    report = workspace.exec(scan, phase=Phase.CHECK, timeout_s=120)
    assert report.exit_code == 1, report.stderr  # bandit: findings
    parsed = json.loads(report.stdout)
    assert parsed["errors"] == []
    assert {r["test_id"] for r in parsed["results"]} == {"B404", "B602"}
    # the factory's own interpreter (3.11) could not have read it
    parse = "import ast; ast.parse(open('generic.py').read())"
    old = workspace.exec(["/usr/bin/python3", "-c", parse], phase=Phase.CHECK)
    assert old.exit_code != 0 and "SyntaxError" in old.stderr


def test_concurrent_runs_download_a_python_once(tmp_path: Path, mirror: _Server) -> None:
    before = mirror.requests[f"/{ARCHIVE}"]
    found: list[str] = []

    def resolve() -> None:  # each run builds its own, as separate factories would
        interpreters = _interpreters(tmp_path / "pythons", mirror)
        found.append(interpreters.resolve("3.12", source=".python-version").version)

    threads = [threading.Thread(target=resolve) for _ in range(3)]
    umask = os.umask(0o077)  # a factory whose files are its own: the sandbox must read these
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        os.umask(umask)
    assert found == ["3.12.1"] * 3
    assert mirror.requests[f"/{ARCHIVE}"] == before + 1
    install = tmp_path / "pythons" / "cpython-3.12.1-linux-x86_64-gnu"
    for path in (install, install / "bin/python3.12", install / "lib/python3.12/os.py"):
        assert path.stat().st_mode & 0o004, path  # readable by the sandbox's users
    assert (install / "bin/python3.12").stat().st_mode & 0o001


def test_an_archive_with_the_wrong_checksum_is_refused(tmp_path: Path, mirror: _Server) -> None:
    interpreters = _interpreters(tmp_path / "pythons", mirror, listing="tampered.json")
    with pytest.raises(PythonUnavailable) as raised:
        interpreters.resolve("3.12", source=".python-version")
    message = str(raised.value)
    assert "'3.12' (asked by .python-version)" in message
    assert f"from the downloads list {mirror.url}/tampered.json failed" in message
    assert "hash mismatch" in message.lower() and "0" * 64 in message
    assert "python_downloads_json_url" in message
    assert interpreters.installed() == []


def test_installed_javascript_packages_are_shown_read_only(tmp_path: Path) -> None:
    sandbox = BubblewrapSandbox(tmp_path / "work", tmp_path / "cache")
    make_repo(tmp_path / "repo", {"package.json": "{}\n", "index.js": "1\n"})
    workspace = sandbox.provision(repo=tmp_path / "repo", commit="HEAD", run_id="js")
    try:
        package = f"{NODE_MODULES}/left-pad"
        plant = f"mkdir -p {package} && echo 'module.exports = 1' > {package}/index.js"
        assert workspace.exec(["/usr/bin/sh", "-c", plant], phase=Phase.SETUP).ok
        for phase in (Phase.ENGINE, Phase.CHECK):
            shown = workspace.exec(["/usr/bin/cat", "node_modules/left-pad/index.js"], phase=phase)
            assert shown.stdout == "module.exports = 1\n", shown.stderr
            for change in ("touch node_modules/x", "rm node_modules/left-pad/index.js"):
                changed = workspace.exec(["/usr/bin/sh", "-c", change], phase=phase)
                assert changed.exit_code != 0 and "Read-only" in changed.stderr
            # nor moved aside for a link that a later command's bind would follow
            moved = workspace.exec(["/usr/bin/mv", "node_modules", "aside"], phase=phase)
            assert moved.exit_code != 0 and "busy" in moved.stderr, moved.stderr
        workspace.write_file("index.js", b"2\n")
        assert workspace.changes().paths == ("index.js",)
    finally:
        workspace.destroy()
        sandbox.close()


def test_a_mirror_without_the_archive_fails_naming_what_was_asked(
    tmp_path: Path, mirror: _Server
) -> None:
    interpreters = PythonInterpreters(
        tmp_path / "pythons",
        host_python="/usr/bin/python3",
        downloads_json_url=None,
        mirror=f"{mirror.url}/pbs",
    )
    with pytest.raises(PythonUnavailable) as raised:
        interpreters.resolve("3.13", source="pyproject.toml requires-python")
    message = str(raised.value)
    assert "'3.13' (asked by pyproject.toml requires-python)" in message
    assert f"`uv python install 3.13` from the mirror {mirror.url}/pbs failed" in message
    assert "404" in message
    asked = [path for path in mirror.requests if path.startswith("/pbs/")]
    assert len(asked) == 1 and "cpython-3.13." in asked[0]  # uv asked the mirror, only it
