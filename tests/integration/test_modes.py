"""`modes.normalise`: what a sandboxed command leaves in a folder it is lent can never be a
setuid program, a device, a FIFO or a socket for the next one, and no link is followed."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from codefactory.sandbox.modes import normalise

PRIVILEGED = stat.S_ISUID | stat.S_ISGID


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_setuid_and_setgid_bits_are_cleared_and_special_files_removed(tmp_path: Path) -> None:
    env = tmp_path / "env"
    (env / "bin").mkdir(parents=True)
    (env / "bin" / "python").write_text("#!/bin/sh\n")
    (env / "bin" / "python").chmod(0o4755)
    (env / "bin" / "tool").write_text("")
    (env / "bin" / "tool").chmod(0o2711)
    (env / "lib" / "shared").mkdir(parents=True)
    (env / "lib" / "shared").chmod(0o2775)
    (env / "lib" / "plain.py").write_text("")
    (env / "lib" / "plain.py").chmod(0o644)
    os.mkfifo(env / "lib" / "pipe")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(env / "lib" / "shared" / "sock"))
    listener.close()
    if os.geteuid() == 0:
        os.mknod(env / "disk", 0o600 | stat.S_IFBLK, os.makedev(7, 0))
        os.mknod(env / "tty", 0o666 | stat.S_IFCHR, os.makedev(5, 0))

    changed = normalise(env)

    removed = ["disk", "tty"] if os.geteuid() == 0 else []
    assert changed == sorted(
        ["bin/python", "bin/tool", "lib/shared", "lib/pipe", "lib/shared/sock", *removed]
    )
    assert _mode(env / "bin" / "python") == 0o755
    assert _mode(env / "bin" / "tool") == 0o711
    assert _mode(env / "lib" / "shared") == 0o775
    assert _mode(env / "lib" / "plain.py") == 0o644
    assert sorted(p.name for p in env.rglob("*")) == ["bin", "lib", "plain.py", "python",
                                                      "shared", "tool"]  # fmt: skip
    assert normalise(env) == []  # nothing left to do


def test_links_are_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "setuid").write_text("")
    (outside / "setuid").chmod(0o4755)
    os.mkfifo(outside / "pipe")
    env = tmp_path / "env"
    env.mkdir()
    (env / "dir-link").symlink_to(outside, target_is_directory=True)
    (env / "file-link").symlink_to(outside / "setuid")
    (env / "pipe-link").symlink_to(outside / "pipe")

    assert normalise(env) == []
    assert _mode(outside / "setuid") == 0o4755
    assert (outside / "pipe").exists() and (env / "pipe-link").is_symlink()


def test_the_root_itself_is_normalised_and_a_missing_root_is_nothing(tmp_path: Path) -> None:
    env = tmp_path / "env"
    env.mkdir()
    env.chmod(0o2755)
    assert normalise(env) == ["."]
    assert not _mode(env) & PRIVILEGED
    assert normalise(tmp_path / "missing") == []


def test_a_root_that_is_a_link_is_refused(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(OSError):
        normalise(tmp_path / "link")
