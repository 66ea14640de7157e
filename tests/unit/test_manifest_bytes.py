"""The manifest's helpers for bytes read elsewhere (the dashboard reads each file once and
checks those very bytes): the digest, the manifest's files, and one file against them."""

from __future__ import annotations

from pathlib import Path

import pytest

from codefactory.package.manifest import (
    MANIFEST,
    PackageAltered,
    check_file,
    file_digest,
    manifest_files,
    package_digest,
    write_manifest,
)


def test_the_bytes_read_are_checked_against_the_manifest(tmp_path: Path) -> None:
    (tmp_path / "evidence").mkdir()
    (tmp_path / "evidence" / "lint.txt").write_bytes(b"ok\n")
    (tmp_path / "change.patch").write_bytes(b"+x\n")
    digest = write_manifest(tmp_path)
    body = (tmp_path / MANIFEST).read_bytes()
    assert file_digest(body) == digest == package_digest(tmp_path)
    files = manifest_files(tmp_path, body)
    assert files == {
        "change.patch": file_digest(b"+x\n"),
        "evidence/lint.txt": file_digest(b"ok\n"),
    }
    check_file(tmp_path, files, "change.patch", b"+x\n")
    with pytest.raises(PackageAltered, match="change.patch is not as it was built"):
        check_file(tmp_path, files, "change.patch", b"+y\n")
    with pytest.raises(PackageAltered, match="extra.md was added after the package was built"):
        check_file(tmp_path, files, "extra.md", b"")


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"not json", "no readable manifest.json"),
        (b'{"nofiles": {}}', "no readable manifest.json"),
        (b'{"files": []}', "lists no files"),
        (b'{"files": {"a": 1}}', "lists no files"),
    ],
)
def test_bytes_that_are_no_manifest_are_refused(tmp_path: Path, body: bytes, problem: str) -> None:
    with pytest.raises(PackageAltered, match=problem):
        manifest_files(tmp_path, body)
