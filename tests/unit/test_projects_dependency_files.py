"""One list of dependency file names for both ecosystems, and the setup phase's rerun filter
agrees with it."""

from __future__ import annotations

import fnmatch

from codefactory.projects.dependency_files import DEPENDENCY_FILE_GLOBS, is_dependency_file
from codefactory.sandbox.setup import dependency_files

EXAMPLES = [
    "requirements.txt", "requirements-dev.txt", "dev-requirements.txt", "constraints.txt",
    "requirements.in", "pyproject.toml", "setup.cfg", "setup.py", "uv.lock", "uv.toml",
    "poetry.lock", "poetry.toml", "Pipfile", "Pipfile.lock", "pylock.toml", "pylock.ci.toml",
    "tox.ini", "noxfile.py", ".python-version", "package.json", "package-lock.json",
    "npm-shrinkwrap.json", "pnpm-lock.yaml", "pnpm-workspace.yaml", "yarn.lock", ".npmrc",
    ".yarnrc", ".yarnrc.yml", ".pnpmfile.cjs", ".pnpmfile.mjs", ".corepack.env",
    ".codefactory/config.toml",
]  # fmt: skip


def named(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(name, g) or fnmatch.fnmatchcase(path, g)
               for g in DEPENDENCY_FILE_GLOBS)  # fmt: skip


def test_every_dependency_file_is_named_and_reruns_setup_at_any_depth() -> None:
    for example in EXAMPLES:
        assert named(example), example
        deep = example if example.startswith(".codefactory/") else f"sub/dir/{example}"
        assert dependency_files([deep]) == [deep], deep


def test_a_committed_yarn_release_or_plugin_is_a_dependency_file() -> None:
    for path in (".yarn/releases/yarn-4.5.0.cjs", ".yarn/plugins/@yarnpkg/plugin-evil.cjs"):
        assert is_dependency_file(path) and dependency_files([path]) == [path], path
    for path in (".yarn/cache/is-number.zip", "web/.yarn/releases/yarn.cjs", "releases/a.cjs"):
        assert not is_dependency_file(path), path


def test_source_and_docs_are_not_dependency_files() -> None:
    for path in ("app.py", "docs/index.txt", "src/pkg/__init__.py", "README.md", "setup.md"):
        assert not named(path), path
        assert dependency_files([path]) == [], path


def test_one_list_for_policy_risk_and_the_diff_policy() -> None:
    from codefactory.package.risk import assess_risk  # noqa: F401 - imports the shared list
    from codefactory.policy.paths import implied_actions
    from codefactory.projects import is_dependency_file
    from codefactory.verify.diff_policy import _is_dependency_file

    for path in ("web/pnpm-lock.yaml", "requirements/test.txt", "tox.ini", "go.mod",
                 ".codefactory/config.toml", "svc/uv.lock"):  # fmt: skip
        assert is_dependency_file(path) and _is_dependency_file(path), path
        assert "modify_dependencies" in implied_actions(path), path
    for path in ("README.md", "svc/app.py", "config.toml"):
        assert not is_dependency_file(path) and not implied_actions(path), path
