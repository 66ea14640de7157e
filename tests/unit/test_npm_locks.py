"""npm, pnpm and yarn lock files read as their tools write them (shapes from real lock files)."""

from __future__ import annotations

import json

from codefactory.advisories import read_npm_lock

PACKAGE_LOCK_V3 = """\
{
  "name": "web",
  "version": "1.0.0",
  "lockfileVersion": 3,
  "requires": true,
  "packages": {
    "": {
      "name": "web",
      "version": "1.0.0",
      "workspaces": ["packages/ui"],
      "dependencies": {"lodash": "^4.17.20", "old-qs": "npm:qs@6.5.2"}
    },
    "node_modules/@babel/code-frame": {
      "version": "7.12.13",
      "resolved": "https://registry.npmjs.org/@babel/code-frame/-/code-frame-7.12.13.tgz",
      "integrity": "sha512-x"
    },
    "node_modules/lodash": {
      "version": "4.17.20",
      "resolved": "https://registry.npmjs.org/lodash/-/lodash-4.17.20.tgz"
    },
    "node_modules/old-qs": {
      "name": "qs",
      "version": "6.5.2",
      "resolved": "https://registry.npmjs.org/qs/-/qs-6.5.2.tgz"
    },
    "node_modules/express/node_modules/debug": {
      "version": "2.6.8"
    },
    "node_modules/ui": {
      "resolved": "packages/ui",
      "link": true
    },
    "node_modules/from-git": {
      "version": "1.0.0",
      "resolved": "git+ssh://git@github.com/user/from-git.git#0123456789abcdef"
    },
    "packages/ui": {
      "version": "0.1.0"
    }
  }
}
"""

PACKAGE_LOCK_V1 = {
    "name": "legacy",
    "lockfileVersion": 1,
    "dependencies": {
        "minimist": {"version": "0.0.8", "resolved": "https://registry.npmjs.org/m.tgz"},
        "mkdirp": {
            "version": "0.5.1",
            "requires": {"minimist": "0.0.8"},
            "dependencies": {"minimist": {"version": "1.2.0"}},
        },
        "my-qs": {"version": "npm:qs@6.5.2"},
        "local": {"version": "file:../local"},
    },
}


def pins(path: str, text: str) -> list[tuple[str, str, int]]:
    lock = read_npm_lock(path, text)
    assert lock.problems == [], lock.problems
    assert all(p.ecosystem == "npm" for p in lock.pins)
    return [(p.name, p.version, p.line) for p in lock.pins]


def test_package_lock_v3_paths_nested_scoped_and_aliased() -> None:
    assert pins("package-lock.json", PACKAGE_LOCK_V3) == [
        ("@babel/code-frame", "7.12.13", 13),
        ("lodash", "4.17.20", 18),
        ("qs", "6.5.2", 22),  # `old-qs` is an alias of qs
        ("debug", "2.6.8", 27),
    ]
    lock = read_npm_lock("package-lock.json", PACKAGE_LOCK_V3)
    assert [(u.requirement, u.kind) for u in lock.unpinned] == [("from-git@1.0.0", "url")]


def test_package_lock_v1_tree_with_nested_and_aliased_dependencies() -> None:
    text = json.dumps(PACKAGE_LOCK_V1, indent=2)
    found = pins("npm-shrinkwrap.json", text)
    assert [(n, v) for n, v, _ in found] == [
        ("minimist", "0.0.8"),
        ("mkdirp", "0.5.1"),
        ("minimist", "1.2.0"),
        ("qs", "6.5.2"),
    ]
    lines = text.splitlines()
    keys = ["minimist", "mkdirp", "minimist", "my-qs"]  # each pin's line is its entry's key
    assert [lines[line - 1].strip() for _, _, line in found] == [f'"{k}": {{' for k in keys]
    assert found[2][2] > found[1][2]  # the nested minimist, not the first one
    assert [u.requirement for u in read_npm_lock("npm-shrinkwrap.json", text).unpinned] == [
        "local@file:../local"
    ]


PNPM_V6 = """\
lockfileVersion: '6.0'

dependencies:
  react-dom:
    specifier: ^17.0.2
    version: 17.0.2(react@17.0.2)

packages:

  /@babel/runtime@7.12.5:
    resolution: {integrity: sha512-x}
    dev: false

  /react-dom@17.0.2(react@17.0.2):
    resolution: {integrity: sha512-y}
    peerDependencies:
      react: 17.0.2

  /react@17.0.2:
    resolution: {integrity: sha512-z}

  /tarball-pkg@https://example.com/tarball-pkg-1.0.0.tgz:
    resolution: {tarball: https://example.com/tarball-pkg-1.0.0.tgz}
    name: tarball-pkg
    version: 1.0.0
"""

PNPM_V9 = """\
lockfileVersion: '9.0'

importers:
  .:
    dependencies:
      lodash:
        specifier: ^4.17.20
        version: 4.17.20

packages:

  '@types/node@20.11.0':
    resolution: {integrity: sha512-a}

  lodash@4.17.20:
    resolution: {integrity: sha512-b}

  react-dom@18.2.0:
    resolution: {integrity: sha512-c}

snapshots:

  '@types/node@20.11.0': {}

  lodash@4.17.20: {}

  react-dom@18.2.0(react@18.2.0):
    dependencies:
      react: 18.2.0
"""

PNPM_V5 = """\
lockfileVersion: 5.4

packages:

  /@babel/core/7.12.3:
    resolution: {integrity: sha512-a}

  /styled-components/5.3.0_react@17.0.2:
    resolution: {integrity: sha512-b}

  github.com/user/repo/0123456789abcdef:
    resolution: {tarball: https://codeload.github.com/user/repo/tar.gz/0123456789abcdef}
    name: repo
    version: 1.0.0
"""


def test_pnpm_v6_keys_with_peer_suffixes() -> None:
    assert pins("pnpm-lock.yaml", PNPM_V6) == [
        ("@babel/runtime", "7.12.5", 10),
        ("react-dom", "17.0.2", 14),
        ("react", "17.0.2", 19),
    ]
    assert [u.kind for u in read_npm_lock("pnpm-lock.yaml", PNPM_V6).unpinned] == ["url"]


def test_pnpm_v9_packages_and_snapshots_judged_once() -> None:
    assert pins("pnpm-lock.yaml", PNPM_V9) == [
        ("@types/node", "20.11.0", 12),
        ("lodash", "4.17.20", 15),
        ("react-dom", "18.2.0", 18),
    ]


def test_pnpm_v5_slash_keys() -> None:
    assert pins("pnpm-lock.yaml", PNPM_V5) == [
        ("@babel/core", "7.12.3", 5),
        ("styled-components", "5.3.0", 8),
    ]


YARN_V1 = """\
# THIS IS AN AUTOGENERATED FILE. DO NOT EDIT THIS FILE DIRECTLY.
# yarn lockfile v1


"@babel/code-frame@^7.0.0", "@babel/code-frame@^7.10.4":
  version "7.12.13"
  resolved "https://registry.yarnpkg.com/@babel/code-frame/-/code-frame-7.12.13.tgz#dcfc826b"
  integrity sha512-HV1Cm0Q3ZrpCR93tkWOYiuYIgLxZXZFVG2VgK+MBWjUqZTundupbfx2aXarXuw5Ko5a==
  dependencies:
    "@babel/highlight" "^7.12.13"

lodash@^4.17.15, lodash@^4.17.20:
  version "4.17.20"
  resolved "https://registry.yarnpkg.com/lodash/-/lodash-4.17.20.tgz#b44a9b6297bcb698f1c51a3545a2b3b368d59c52"

"old-qs@npm:qs@6.5.2":
  version "6.5.2"
  resolved "https://registry.yarnpkg.com/qs/-/qs-6.5.2.tgz#cb3ae806e8740444584ef154ce8ee98d403f3e36"

"from-git@git+https://github.com/user/from-git.git#v1.0.0":
  version "1.0.0"
  resolved "git+https://github.com/user/from-git.git#0123456789abcdef"

"local-lib@file:../local-lib":
  version "2.0.0"
"""

YARN_BERRY = """\
# This file is generated by running "yarn install" inside your project.
# Manual changes might be lost - proceed with caution!

__metadata:
  version: 6
  cacheKey: 8

"@babel/code-frame@npm:^7.0.0":
  version: 7.12.13
  resolution: "@babel/code-frame@npm:7.12.13"
  checksum: 471532bb7cf4224adf3b8b9e8c3bb8d4e2c2a3a0e9b8f1f2f3e4d5c6b7a8f9e0
  languageName: node
  linkType: hard

"lodash@npm:^4.17.15, lodash@npm:^4.17.20":
  version: 4.17.20
  resolution: "lodash@npm:4.17.20"
  languageName: node
  linkType: hard

"old-qs@npm:qs@6.5.2":
  version: 6.5.2
  resolution: "qs@npm:6.5.2"
  languageName: node
  linkType: hard

"resolve@patch:resolve@^1.20.0#~builtin<compat/resolve>":
  version: 1.20.0
  resolution: "resolve@patch:resolve@npm%3A1.20.0#~builtin<compat/resolve>::version=1.20.0"
  languageName: node
  linkType: hard

"web@workspace:.":
  version: 0.0.0-use.local
  resolution: "web@workspace:."
  languageName: unknown
  linkType: soft
"""


def test_yarn_v1_entries_aliases_and_git() -> None:
    assert pins("yarn.lock", YARN_V1) == [
        ("@babel/code-frame", "7.12.13", 5),
        ("lodash", "4.17.20", 12),
        ("qs", "6.5.2", 16),
    ]
    assert [u.requirement for u in read_npm_lock("yarn.lock", YARN_V1).unpinned] == [
        "from-git@git+https://github.com/user/from-git.git#v1.0.0",
        "local-lib@file:../local-lib",
    ]


def test_yarn_berry_resolutions_patches_and_workspaces() -> None:
    assert pins("yarn.lock", YARN_BERRY) == [
        ("@babel/code-frame", "7.12.13", 8),
        ("lodash", "4.17.20", 15),
        ("qs", "6.5.2", 21),
        ("resolve", "1.20.0", 27),
    ]
    assert read_npm_lock("yarn.lock", YARN_BERRY).unpinned == []  # the workspace is the project


def test_what_cannot_be_read_is_named_with_its_line() -> None:
    broken = read_npm_lock("web/package-lock.json", '{"lockfileVersion": 3,\n "packages": [}')
    assert [(p.file, p.line) for p in broken.problems] == [("web/package-lock.json", 2)]
    yarn = read_npm_lock("yarn.lock", 'lodash@^4:\n  version "4.17.20"\nthis is not yarn\n')
    assert [(p.line, p.reason) for p in yarn.problems] == [
        (3, "not a yarn.lock entry: 'this is not yarn'")
    ]
    pnpm = read_npm_lock("pnpm-lock.yaml", "lockfileVersion: '9.0'\npackages: [\n")
    assert pnpm.problems and pnpm.problems[0].reason.startswith("not YAML")
