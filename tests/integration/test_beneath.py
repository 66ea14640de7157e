"""Reading beneath a root never follows a symbolic link, on this kernel's openat2 and on the
one-component-at-a-time walk that kernels without it get."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from codefactory.sandbox import beneath
from codefactory.sandbox.beneath import (
    FileTooLarge,
    LinkInPath,
    NotARegularFile,
    kind_beneath,
    list_beneath,
    read_beneath,
)
from codefactory.sandbox.errors import SandboxError

SECRET = b"host secret\n"


@pytest.fixture(params=["openat2", "walk"])
def resolution(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test runs on openat2 and on the fallback walk (as on a kernel without openat2)."""
    monkeypatch.setattr(beneath, "_openat2_missing", request.param == "walk")
    return str(request.param)


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[Path]:
    host = tmp_path / "host"
    host.mkdir()
    (host / "shadow").write_bytes(SECRET)
    root = tmp_path / "root"
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_bytes(b"print('hi')\n")
    (root / "etc").symlink_to(host)
    (root / "src" / "to-secret").symlink_to(host / "shadow")
    (root / "src" / "relative").symlink_to("app.py")
    os.mkfifo(root / "fifo")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(root / "sock"))
    yield root
    server.close()


def test_regular_files_are_read(tree: Path, resolution: str) -> None:
    assert read_beneath(tree, "src/app.py", max_bytes=100) == b"print('hi')\n"
    assert read_beneath(tree, "./src//app.py", max_bytes=100) == b"print('hi')\n"


@pytest.mark.parametrize(
    ("relative", "error", "kind"),
    [
        ("etc/shadow", LinkInPath, "link-in-path"),
        ("src/to-secret", NotARegularFile, "symlink"),
        ("src/relative", NotARegularFile, "symlink"),
        ("fifo", NotARegularFile, "fifo"),
        ("sock", NotARegularFile, "socket"),
        ("src", NotARegularFile, "dir"),
        ("nothing", NotARegularFile, "missing"),
        ("src/app.py/below", NotARegularFile, "missing"),
    ],
)
def test_anything_but_a_regular_file_inside_is_refused_with_what_it_is(
    tree: Path, resolution: str, relative: str, error: type[Exception], kind: str
) -> None:
    with pytest.raises(error) as raised:
        read_beneath(tree, relative, max_bytes=100)
    assert isinstance(raised.value, SandboxError)
    assert raised.value.kind == kind  # type: ignore[attr-defined]
    assert kind_beneath(tree, relative) == kind


def test_a_fifo_never_blocks_and_a_device_is_never_opened(tree: Path, resolution: str) -> None:
    done = threading.Event()

    def read_fifo() -> None:
        with pytest.raises(NotARegularFile):
            read_beneath(tree, "fifo", max_bytes=10)
        done.set()

    threading.Thread(target=read_fifo, daemon=True).start()
    assert done.wait(5), "reading a FIFO blocked"
    assert kind_beneath(Path("/dev"), "null") == "device"
    with pytest.raises(NotARegularFile, match="a device"):
        read_beneath(Path("/dev"), "null", max_bytes=10)


def test_paths_that_climb_out_are_refused(tree: Path, resolution: str) -> None:
    for relative in ("../host/shadow", "/etc/passwd", "src/../../host/shadow"):
        with pytest.raises(ValueError, match="relative|climb"):
            read_beneath(tree, relative, max_bytes=100)


def test_the_cap_refuses_a_larger_file(tree: Path, resolution: str) -> None:
    with pytest.raises(FileTooLarge) as raised:
        read_beneath(tree, "src/app.py", max_bytes=5)
    assert raised.value.size == 12 and raised.value.max_bytes == 5
    assert read_beneath(tree, "src/app.py", max_bytes=12) == b"print('hi')\n"


def test_listing_names_each_entry_without_following_it(tree: Path, resolution: str) -> None:
    assert list_beneath(tree) == [
        ("etc", "symlink"), ("fifo", "fifo"), ("sock", "socket"), ("src", "dir"),
    ]  # fmt: skip
    assert list_beneath(tree, "src") == [
        ("app.py", "file"), ("relative", "symlink"), ("to-secret", "symlink"),
    ]  # fmt: skip
    with pytest.raises(LinkInPath):
        list_beneath(tree, "etc/sub")
    with pytest.raises(NotARegularFile, match="symlink"):
        list_beneath(tree, "etc")


def test_a_folder_swapped_for_a_link_while_reading_never_leaks(tree: Path, resolution: str) -> None:
    """A writer flips `swap` between a real folder and a link to the host as fast as it can;
    every read either gets the inside file or is refused, never the host's."""
    inside = tree / "swap-real"
    inside.mkdir()
    (inside / "shadow").write_bytes(b"inside\n")
    link = tree / "swap-link"
    link.symlink_to(tree.parent / "host")
    stop = threading.Event()

    def flip() -> None:
        while not stop.is_set():
            os.rename(inside, tree / "swap")
            os.rename(tree / "swap", inside)
            os.rename(link, tree / "swap")
            os.rename(tree / "swap", link)

    flipper = threading.Thread(target=flip, daemon=True)
    flipper.start()
    seen = set()
    # At least 3000 reads, and on until both outcomes were seen (the race was run, not
    # missed): a loaded machine's scheduler may keep the flipper on one side for a while.
    deadline, reads = time.monotonic() + 60, 0
    try:
        while reads < 3000 or not {b"inside\n", b"refused"} <= seen:
            if time.monotonic() > deadline:
                break
            reads += 1
            try:
                seen.add(read_beneath(tree, "swap/shadow", max_bytes=100))
            except (LinkInPath, NotARegularFile):
                seen.add(b"refused")
            except OSError:
                seen.add(b"raced")
    finally:
        stop.set()
        flipper.join()
    assert SECRET not in seen
    assert {b"inside\n", b"refused"} <= seen
