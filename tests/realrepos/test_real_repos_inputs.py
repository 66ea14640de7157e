"""The real-repos inputs refuse what is not the pinned release: an edit whose line is not in
the source exactly once, an archive or an added lock file whose digest differs."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from benchmarks.real_repos import PROJECTS, Edit, FetchError, archive, materialise, project

pytestmark = pytest.mark.real_repos


def test_an_edit_applies_only_to_a_line_found_exactly_once(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text("x = 1\nx = 1\ny = 2\n")
    with pytest.raises(ValueError, match=r"m\.py: expected 'x = 1\\n' once, found it 2 times"):
        Edit(path="m.py", old="x = 1\n", new="x = 3\n").apply(tmp_path)
    with pytest.raises(ValueError, match="found it 0 times"):
        Edit(path="m.py", old="z = 0\n", new="z = 1\n").apply(tmp_path)
    Edit(path="m.py", old="y = 2\n", new="y = 3\n").apply(tmp_path)
    assert (tmp_path / "m.py").read_text() == "x = 1\nx = 1\ny = 3\n"


def test_every_project_is_pinned_and_its_edits_fit_its_source(tmp_path: Path) -> None:
    assert len(PROJECTS) >= 8
    assert {p.ecosystem for p in PROJECTS} == {"PyPI", "npm"}
    for item in PROJECTS:
        assert len(item.sha256) == 64, item.slug
        assert item.harmless.path and item.mutation.path
    item = project("isarray")
    repo = materialise(item, tmp_path / "isarray")
    item.harmless.apply(repo)
    item.mutation.apply(repo)  # a different line: both apply to the same tree


def test_an_archive_or_lock_that_is_not_the_pinned_one_is_refused(tmp_path: Path) -> None:
    item = project("isarray")
    cache = tmp_path / "cache"
    (cache / "archives").mkdir(parents=True)
    shutil.copyfile(archive(item), cache / "archives" / item.archive_name)
    tampered = dataclasses.replace(item, sha256="0" * 64)
    with pytest.raises(FetchError, match=f"has sha256 {item.sha256}, pinned 0{{64}}"):
        archive(tampered, cache)  # the cached file differs, so it is fetched and checked
    assert item.added_lock is not None
    wrong_lock = dataclasses.replace(item, added_lock=(item.added_lock[0], "f" * 64))
    with pytest.raises(FetchError, match="is not the pinned lock"):
        materialise(wrong_lock, tmp_path / "repo", cache)
