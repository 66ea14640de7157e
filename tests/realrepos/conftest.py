"""Real public projects (pinned PyPI sdists and npm tarballs) as the factory's inputs.

The archives and the package downloads are cached under
`~/.cache/codefactory-tests/real-repos` (`benchmarks/real_repos.py`), so after the first run
these tests install from the cache and spend their time in the sandbox and the gate.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from benchmarks.factory_cli import FactoryCli, data_dir, synced_advisories
from benchmarks.real_repos import CACHE, RealProject, materialise


def checkout(item: RealProject) -> Path:
    """A fresh git repository of `item` at a stable path (its package cache is keyed by the
    repository's path, so a stable one keeps the downloads between sessions)."""
    repo = CACHE / "tests" / item.slug
    shutil.rmtree(repo, ignore_errors=True)
    return materialise(item, repo)


@pytest.fixture(scope="session")
def advisory_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real OSV data (the PyPA database, real npm advisories) synced once per session with
    `codefactory advisories sync --from` a loopback server: SCA blocks without fresh data."""
    return synced_advisories(tmp_path_factory.mktemp("advisories"))


@pytest.fixture
def factory(tmp_path: Path, advisory_index: Path, bwrap_available: None) -> FactoryCli:
    """The `codefactory` CLI over a data folder of this test's own, sharing the download
    cache of every real-repos run and the session's synced advisory data."""
    return FactoryCli(
        data_dir(tmp_path / "data", CACHE / "packages"),
        env={"CODEFACTORY_ADVISORIES_DIR": str(advisory_index)},
    )
