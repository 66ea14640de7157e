"""Real public projects (pinned PyPI sdists and npm tarballs) as the factory's inputs.

The archives and the package downloads are cached under
`~/.cache/codefactory-tests/real-repos` (`benchmarks/real_repos.py`), so after the first run
these tests install from the cache and spend their time in the sandbox and the gate.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from benchmarks.factory_cli import FactoryCli, data_dir
from benchmarks.real_repos import CACHE, RealProject, materialise


def checkout(item: RealProject) -> Path:
    """A fresh git repository of `item` at a stable path (its package cache is keyed by the
    repository's path, so a stable one keeps the downloads between sessions)."""
    repo = CACHE / "tests" / item.slug
    shutil.rmtree(repo, ignore_errors=True)
    return materialise(item, repo)


@pytest.fixture
def factory(tmp_path: Path, bwrap_available: None) -> FactoryCli:
    """The `codefactory` CLI over a data folder of this test's own, sharing the download
    cache of every real-repos run."""
    return FactoryCli(data_dir(tmp_path / "data", CACHE / "packages"))
