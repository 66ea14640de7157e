"""Ways to host privilege through what the setup phase leaves behind: setuid binaries, device
nodes, FIFOs and files owned by root in the package cache or the pre-warmed image.

The repository ships a local package with an in-tree PEP 517 build backend (no downloads):
building it in the setup phase plants a setuid copy of a binary, a FIFO and a socket in the
package cache and in the environment the image keeps, then builds a real wheel.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from codefactory.sandbox.bubblewrap import BubblewrapSandbox
from codefactory.sandbox.images import ImageCache
from codefactory.sandbox.port import Phase
from codefactory.sandbox.setup import install_dependencies
from tests.conftest import make_repo
from tests.escape.conftest import Escape

BACKEND = """
import base64, hashlib, os, shutil, socket, stat, zipfile

def _plant(folder):
    os.makedirs(folder, exist_ok=True)
    for name in ("suid-id", "sgid-id"):
        target = os.path.join(folder, name)
        shutil.copy("/usr/bin/id", target)
        os.chmod(target, 0o4755 if name == "suid-id" else 0o2755)
    os.mkfifo(os.path.join(folder, "fifo"))
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(os.path.join(folder, "sock"))
    try:
        os.mknod(os.path.join(folder, "null"), 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except OSError:
        pass

def get_requires_for_build_wheel(config_settings=None):
    return []

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    _plant("/cache/planted")
    _plant("/env/planted")
    name = "planter-1.0-py3-none-any.whl"
    info = "planter-1.0.dist-info/"
    files = {"planter/__init__.py": b"",
             info + "METADATA": b"Metadata-Version: 2.1\\nName: planter\\nVersion: 1.0\\n",
             info + "WHEEL": b"Wheel-Version: 1.0\\nGenerator: x\\nRoot-Is-Purelib: true\\n"
             + b"Tag: py3-none-any\\n"}
    record = []
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as wheel:
        for path, data in files.items():
            wheel.writestr(path, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{path},sha256={digest},{len(data)}")
        record.append("planter-1.0.dist-info/RECORD,,")
        wheel.writestr("planter-1.0.dist-info/RECORD", "\\n".join(record) + "\\n")
    return name
"""

PYPROJECT = """[build-system]
requires = []
build-backend = "backend"
backend-path = ["."]

[project]
name = "planter"
version = "1.0"
"""


pytestmark = pytest.mark.usefixtures("bwrap_session")


@pytest.fixture
def planted(tmp_path: Path) -> Iterator[tuple[BubblewrapSandbox, Path]]:
    repo = tmp_path / "repo"
    make_repo(
        repo,
        {
            "requirements.txt": "./planter\n",
            "planter/pyproject.toml": PYPROJECT,
            "planter/backend.py": BACKEND,
            "app.py": "print('hi')\n",
        },
    )
    images = ImageCache(tmp_path / "images", python="/usr/bin/python3")
    sandbox = BubblewrapSandbox(tmp_path / "work", tmp_path / "cache", images=images)
    workspace = sandbox.provision(repo=repo, commit="HEAD", run_id="planted")
    try:
        install_dependencies(workspace)
        result = workspace.exec(["sh", "-c", "ls /env/planted"], phase=Phase.CHECK)
        assert result.ok, result.stderr
    finally:
        workspace.destroy()
        sandbox.close()
    yield sandbox, tmp_path


def _dangerous(root: Path) -> list[str]:
    """Setuid/setgid files, device nodes, FIFOs, sockets and root-owned files under `root`."""
    found = []
    for directory, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(directory, name)
            st = os.lstat(path)
            kind = stat.S_IFMT(st.st_mode)
            if st.st_mode & (stat.S_ISUID | stat.S_ISGID):
                found.append(f"{name}: set-id bit, uid {st.st_uid}")
            elif kind in (stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO, stat.S_IFSOCK):
                found.append(f"{name}: special file")
    return found


def test_setuid_binaries_left_by_a_build_backend(
    planted: tuple[BubblewrapSandbox, Path], escape: Escape
) -> None:
    sandbox, data = planted
    left = _dangerous(data / "cache") + _dangerous(data / "images")
    escape.attempt(
        "setuid binary, FIFO, socket left in cache and image by a build backend",
        expected="modes normalised, specials removed",
        observed="; ".join(left)[:70] or "none left",
        blocked=not left,
    )


def test_files_the_sandbox_writes_are_not_root_s(
    planted: tuple[BubblewrapSandbox, Path], escape: Escape
) -> None:
    sandbox, data = planted
    ids = sandbox.ids_for(data / "repo")
    if ids is None:
        pytest.skip("the factory is not root: the sandbox already runs as the factory's user")
    env = next((data / "images").glob("*/envs/*/env"))
    owners = {os.lstat(p).st_uid for p in [env, *env.rglob("*")]}
    cache_owners = {os.lstat(p).st_uid for p in (data / "cache").glob("*/**/*")}
    escape.attempt(
        "files written in setup owned by host root",
        expected=f"owned by uid {ids.uid}",
        observed=f"env owners {sorted(owners)}, cache owners {sorted(cache_owners)}",
        blocked=owners == {ids.uid} and cache_owners <= {ids.uid},
    )


def test_make_a_device_node(planted: tuple[BubblewrapSandbox, Path], escape: Escape) -> None:
    sandbox, data = planted
    workspace = sandbox.provision(repo=data / "repo", commit="HEAD", run_id="mknod")
    try:
        result = workspace.exec(
            ["sh", "-c", "mknod disk b 8 0 || mknod null c 1 3; ls -l disk null"],
            phase=Phase.ENGINE,
        )
    finally:
        workspace.destroy()
    escape.attempt(
        "create a device node in the workspace",
        expected="operation not permitted",
        observed=(result.stderr.strip().splitlines() or [""])[0][:70],
        blocked=result.exit_code != 0 and "Operation not permitted" in result.stderr,
    )


PLANT = """
/usr/bin/mkdir -p /env/bin
for name in setpriv sh cat mkdir ruff uv ls rm tar socat grep sleep find; do
  printf '#!/usr/bin/sh\\necho "$(id -u) $0" >> /tmp/hijacked; exit 1\\n' > /env/bin/$name
  chmod +x /env/bin/$name
done
"""


def test_programs_planted_in_the_environment_never_stand_in_for_the_factorys(
    escape_sandbox: BubblewrapSandbox, escape_repo: Path, escape: Escape
) -> None:
    workspace = escape_sandbox.provision(repo=escape_repo, commit="HEAD", run_id="esc-path")
    try:
        planted = workspace.exec(["/usr/bin/sh", "-c", PLANT], phase=Phase.SETUP)
        assert planted.ok, planted.stderr
        uid = workspace.exec(["/usr/bin/id", "-u"], phase=Phase.ENGINE).stdout.strip()
        workspace.write_file("app.py", b"print('changed')\n")
        content = workspace.read_file("app.py")
        through_proxy = workspace.exec(
            ["/usr/bin/true"], phase=Phase.ENGINE, allow_hosts=["pypi.org"]
        )
        ran = workspace.exec(["/usr/bin/cat", "/tmp/hijacked"], phase=Phase.ENGINE).stdout.strip()
    finally:
        workspace.destroy()
    ids = escape_sandbox.ids_for(escape_repo)
    escape.attempt(
        "plant setpriv/sh/ruff in /env/bin for the factory to run",
        expected="absolute paths: none runs",
        observed=f"uid {uid}; file helpers {content!r}; planted ran: {ran or 'never'}"[:90],
        blocked=not ran
        and content == b"print('changed')\n"
        and through_proxy.ok
        and (ids is None or uid == str(ids.uid)),
    )


HOG = """
import ctypes, time
libc = ctypes.CDLL(None, use_errno=True)
held = 0
while libc.inotify_init1(0) >= 0:
    held += 1
print(held, flush=True)
time.sleep(6)
"""
ONE = "import ctypes; print(ctypes.CDLL(None, use_errno=True).inotify_init1(0) >= 0)"


def test_another_repositorys_sandbox_cannot_be_starved_of_per_user_limits(
    escape_sandbox: BubblewrapSandbox, escape_repo: Path, escape: Escape, tmp_path: Path
) -> None:
    """Red team: every sandbox ran as one host uid, so one could take all the user's inotify
    instances (and message queues) and starve every other run until its command ended."""
    other = tmp_path / "other-repository"
    make_repo(other, {"app.py": "print('other')\n"})
    hog = escape_sandbox.provision(repo=escape_repo, commit="HEAD", run_id="esc-hog")
    victim = escape_sandbox.provision(repo=other, commit="HEAD", run_id="esc-victim")
    try:
        held: list[str] = []
        thread = threading.Thread(
            target=lambda: held.append(
                hog.exec(["/usr/bin/python3", "-c", HOG], phase=Phase.ENGINE).stdout.strip()
            )
        )
        thread.start()
        time.sleep(2.5)
        result = victim.exec(["/usr/bin/python3", "-c", ONE], phase=Phase.ENGINE)
        thread.join()
    finally:
        hog.destroy()
        victim.destroy()
    same = escape_sandbox.ids_for(escape_repo) == escape_sandbox.ids_for(other)
    escape.attempt(
        "take every inotify instance of the sandbox user",
        expected="another repository's run unaffected",
        observed=f"hog held {held[0] if held else '?'}; other run got one: "
        f"{result.stdout.strip()}; same uid: {same}",
        blocked=result.stdout.strip() == "True" and not same,
    )
