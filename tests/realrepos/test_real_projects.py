"""Real projects, as a new user brings them: the environment their lock file describes is the
one installed, a harmless change passes the gate and a mutation their own tests catch blocks
it.

Three of the ten projects of `bench_real_repos.py` (`make bench B=real_repos` runs them all):
a uv project with a PEP 735 group, pip-compile pins reached through tox.ini in a subfolder,
and an npm package (with the lock file the benchmark adds: npm tarballs never ship one).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.factory_cli import (
    FactoryCli,
    canonical,
    installed_distributions,
    installed_versions,
)
from benchmarks.real_repos import RealProject, git, project
from tests.realrepos.conftest import checkout
from tests.realrepos.locks import package_lock, pinned_requirements, uv_lock

pytestmark = pytest.mark.real_repos


def assert_environment_is_the_locked_one(
    factory: FactoryCli, repo: Path, item: RealProject
) -> None:
    if item.name == "iniconfig":  # uv.lock: every installed distribution at the lock's version
        locked = uv_lock(repo / "uv.lock")
        installed = installed_distributions(factory, repo)
        assert installed.pop("iniconfig", None) is not None  # the project (dynamic version)
        assert {n: locked.get(n) for n in installed} == installed
        assert installed.keys() >= {"pytest", "pytest-xdist"}  # the PEP 735 group dev
    elif item.name == "itsdangerous":  # tox.ini: deps = -r requirements/tests.txt
        locked = pinned_requirements(repo / "requirements" / "tests.txt")
        installed = installed_distributions(factory, repo)
        assert {n: installed.get(n) for n in locked} == locked
    else:  # package-lock.json: every package at its path and version
        locked = package_lock(repo / "package-lock.json")
        assert installed_versions(factory, repo, item.ecosystem, list(locked)) == locked
    # the benchmark's own pins say what the lock says
    assert {canonical(n): locked.get(canonical(n)) for n, _ in item.pins} == {
        canonical(n): v for n, v in item.pins
    }


@pytest.mark.parametrize("name", ["iniconfig", "itsdangerous", "isarray"])
def test_a_real_project_is_set_up_as_its_lock_says_and_judged_by_its_tests(
    name: str, factory: FactoryCli
) -> None:
    item = project(name)
    repo = checkout(item)
    assert_environment_is_the_locked_one(factory, repo, item)

    item.harmless.apply(repo)
    harmless = factory.verify(repo)
    assert harmless.passed, harmless.reason()

    git(repo, "checkout", "--", item.harmless.path)
    item.mutation.apply(repo)
    mutation = factory.verify(repo)
    assert mutation.blocked_only_by_tests, mutation.reason()
