"""Which files are dependency files: one list for setup, policy, risk and the diff policy.

No imports of the project: policy and packaging read it without loading detection.
"""

from __future__ import annotations

import fnmatch
from pathlib import PurePosixPath

DEPENDENCY_FILE_GLOBS = (
    "requirements*.txt", "*requirements*.txt", "constraints*.txt", "*.in", "pyproject.toml",
    "setup.cfg", "setup.py", "uv.lock", "uv.toml", "poetry.lock", "poetry.toml", "Pipfile",
    "Pipfile.lock", "pylock.toml", "pylock.*.toml", "tox.ini", "noxfile.py", ".python-version",
    "package.json", "package-lock.json", "npm-shrinkwrap.json", "pnpm-lock.yaml",
    "pnpm-workspace.yaml", "yarn.lock", ".npmrc", ".yarnrc", ".yarnrc.yml", ".pnpmfile.cjs",
    ".pnpmfile.mjs", ".corepack.env", ".codefactory/config.toml",
)  # fmt: skip
"""Every file name (fnmatch globs, matched against a path's name, or the whole path for
`.codefactory/config.toml`) whose change can change what the setup phase installs, in either
ecosystem. One list for the setup phase, policy, risk and the diff policy."""

DEPENDENCY_FOLDERS = (".yarn/releases/", ".yarn/plugins/")
"""Folders (from the repository root) whose every file is a package manager's own code: a
committed Yarn release or plugin, which a `.yarnrc.yml` can make Yarn run."""

OTHER_ECOSYSTEM_GLOBS = (
    "pdm.lock", "go.mod", "go.sum", "Cargo.toml", "Cargo.lock", "pom.xml", "build.gradle",
    "build.gradle.kts", "Gemfile", "Gemfile.lock",
)  # fmt: skip
"""Manifests and lock files of ecosystems the factory does not set up: a change to one still
changes which third-party code runs, for policy, risk and the diff policy."""


def is_dependency_file(path: str) -> bool:
    """Whether `path` (POSIX, from the repository root) is a manifest, lock or setup input of
    any ecosystem: its name matches `DEPENDENCY_FILE_GLOBS` or `OTHER_ECOSYSTEM_GLOBS`, or
    the path is the repository config, a file under `DEPENDENCY_FOLDERS` (a committed Yarn
    release or plugin), or a `.txt` file in a `req*` folder (`requirements/test.txt`,
    `reqs/base.txt`: what `-r` includes name)."""
    if path.startswith(DEPENDENCY_FOLDERS):
        return True
    pure = PurePosixPath(path)
    globs = (*DEPENDENCY_FILE_GLOBS, *OTHER_ECOSYSTEM_GLOBS)
    if path in DEPENDENCY_FILE_GLOBS or any(fnmatch.fnmatchcase(pure.name, g) for g in globs):
        return True
    return pure.suffix == ".txt" and any(part.startswith("req") for part in pure.parts[:-1])
