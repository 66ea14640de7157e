"""Real projects, as a new user brings them: the environment their files describe is the one
installed, a harmless change passes the gate and a mutation their own tests catch blocks it.

Three of the ten projects of `bench_real_repos.py` (`make bench B=real_repos` runs them all):
a uv project with a PEP 735 group, pinned requirements reached through tox.ini in a subfolder,
and an npm package (with the lock file the benchmark adds: npm
tarballs never ship one).
"""

from __future__ import annotations

import pytest

from benchmarks.factory_cli import FactoryCli, installed_versions
from benchmarks.real_repos import git, project
from tests.realrepos.conftest import checkout

pytestmark = pytest.mark.real_repos


@pytest.mark.parametrize("name", ["iniconfig", "itsdangerous", "isarray"])
def test_a_real_project_is_set_up_as_its_files_say_and_judged_by_its_tests(
    name: str, factory: FactoryCli
) -> None:
    item = project(name)
    repo = checkout(item)
    pinned = dict(item.pins)
    assert pinned, "each project here names the versions its lock fixes"
    assert installed_versions(factory, repo, item.ecosystem, list(pinned)) == pinned

    item.harmless.apply(repo)
    harmless = factory.verify(repo)
    assert harmless.passed, harmless.reason()

    git(repo, "checkout", "--", item.harmless.path)
    item.mutation.apply(repo)
    mutation = factory.verify(repo)
    assert mutation.blocked_only_by_tests, mutation.reason()
