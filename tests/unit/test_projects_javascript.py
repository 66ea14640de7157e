"""JavaScript detection: which locked install, which test script, whether ESLint is configured,
and a named problem for everything that cannot be installed reproducibly."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pytest

from codefactory.projects.javascript import detect_javascript
from codefactory.projects.model import JavaScriptProject, RepositoryConfig
from codefactory.sandbox.layout import NODE_MODULES

BERRY_LOCK = '__metadata:\n  version: 8\n  cacheKey: 10c0\n\n"is-number@npm:7.0.0":\n'
YARN1_LOCK = '# yarn lockfile v1\n\n\nis-number@7.0.0:\n  version "7.0.0"\n'


class Files:
    """A committed tree held in memory (the `FileSource` port)."""

    def __init__(self, files: Mapping[str, str | bytes]) -> None:
        self.files = {p: c.encode() if isinstance(c, str) else c for p, c in files.items()}

    def paths(self) -> list[str]:
        return sorted(self.files)

    def read(self, path: str) -> bytes | None:
        return self.files.get(path)

    def is_link(self, path: str) -> bool:
        return False


def manifest(**fields: object) -> str:
    return json.dumps({"name": "sample", "version": "1.0.0", **fields})


def detect(files: Mapping[str, str | bytes]) -> tuple[JavaScriptProject | None, list[str]]:
    return detect_javascript(Files(files), RepositoryConfig())


def found(files: Mapping[str, str | bytes]) -> JavaScriptProject:
    project, problems = detect(files)
    assert problems == []
    assert project is not None
    return project


def install(project: JavaScriptProject) -> tuple[str, ...]:
    """The install command of the setup plan, without the `env` prefix and its variables."""
    argv = project.setup[0].argv
    start = next(i for i, a in enumerate(argv) if i > 0 and "=" not in a)
    return argv[start:]


def test_npm_lock_is_a_clean_install_with_scripts_off() -> None:
    project = found({"package.json": manifest(), "package-lock.json": "{}"})
    assert (project.manager, project.lock_file) == ("npm", "package-lock.json")
    assert install(project) == (
        "/usr/bin/npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"
    )  # fmt: skip
    assert "npm_config_ignore_scripts=true" in project.setup[0].argv
    assert project.inputs == ("package-lock.json", "package.json")


def test_the_packages_end_in_env_node_modules() -> None:
    project = found({"package.json": manifest(), "npm-shrinkwrap.json": "{}"})
    assert project.lock_file == "npm-shrinkwrap.json"
    move = project.setup[-1].argv
    assert move[:2] == ("/usr/bin/sh", "-c")
    assert f"/usr/bin/mv node_modules {NODE_MODULES}" in move[2]


def test_pnpm_lock_is_a_frozen_install_through_corepack() -> None:
    project = found({"package.json": manifest(), "pnpm-lock.yaml": "lockfileVersion: '9.0'\n"})
    assert project.manager == "pnpm"
    assert install(project)[:6] == (
        "/usr/bin/corepack", "pnpm", "install", "--frozen-lockfile", "--ignore-scripts",
        "--ignore-pnpmfile",
    )  # fmt: skip
    env = project.setup[0].argv
    assert "COREPACK_ENABLE_DOWNLOAD_PROMPT=0" in env
    assert "COREPACK_NPM_REGISTRY=https://registry.npmjs.org" in env
    assert any(a.startswith("COREPACK_HOME=/cache/") for a in env)


def test_yarn_classic_and_berry_are_told_apart_by_the_lock_file() -> None:
    classic = found({"package.json": manifest(), "yarn.lock": YARN1_LOCK})
    assert install(classic)[:5] == (
        "/usr/bin/corepack", "yarn", "install", "--frozen-lockfile", "--ignore-scripts"
    )  # fmt: skip
    berry = found({"package.json": manifest(packageManager="yarn@4.5.0"), "yarn.lock": BERRY_LOCK})
    assert install(berry) == (
        "/usr/bin/corepack", "yarn@4.5.0", "install", "--immutable", "--mode=skip-build"
    )  # fmt: skip
    assert "YARN_NODE_LINKER=node-modules" in berry.setup[0].argv
    # Berry reads its own proxy and CA settings, not HTTPS_PROXY / NODE_EXTRA_CA_CERTS
    assert "YARN_HTTPS_PROXY=http://127.0.0.1:3128" in berry.setup[0].argv
    assert "YARN_HTTPS_CA_FILE_PATH=/etc/ssl/certs/ca-certificates.crt" in berry.setup[0].argv


PNPM_LOCK = "lockfileVersion: '9.0'\n"


@pytest.mark.parametrize(
    ("files", "flag"),
    [
        ({"package-lock.json": "{}"}, "--ignore-scripts"),
        ({"pnpm-lock.yaml": PNPM_LOCK}, "--ignore-pnpmfile"),
        ({"yarn.lock": YARN1_LOCK}, "--ignore-scripts"),
        ({"yarn.lock": BERRY_LOCK}, "--mode=skip-build"),
    ],
)
def test_no_code_of_the_repository_runs_during_the_install(
    files: dict[str, str], flag: str
) -> None:
    committed = {
        ".pnpmfile.cjs": "process.exit(4)",
        ".yarnrc": 'yarn-path "./tools/evil.js"\n',
        ".npmrc": "ignore-scripts=false\n",
        ".corepack.env": "COREPACK_INTEGRITY_KEYS=0\n",
        "tools/evil.js": "process.exit(3)",
    }
    pinned = {"packageManager": "yarn@4.5.0"} if files.get("yarn.lock") == BERRY_LOCK else {}
    project = found({"package.json": manifest(**pinned), **files, **committed})
    argv = project.setup[0].argv
    assert flag in install(project)
    # environment variables win over .npmrc/.yarnrc; yarn-path and .corepack.env are ignored
    assert {"npm_config_ignore_scripts=true", "YARN_IGNORE_PATH=1", "COREPACK_ENV_FILE=0"} <= set(
        argv
    )
    assert "COREPACK_INTEGRITY_KEYS=0" not in argv
    # pnpm's flag as a variable too (what a check's `pnpm run` honours); npm would warn of it
    assert ("npm_config_ignore_pnpmfile=true" in argv) is (flag == "--ignore-pnpmfile")
    # each decides what setup does: an edit re-runs it
    assert {".pnpmfile.cjs", ".yarnrc", ".npmrc", ".corepack.env"} <= set(project.inputs)


@pytest.mark.parametrize(
    ("yarnrc", "named"),
    [
        ("yarnPath: .yarn/releases/yarn-4.5.0.cjs\n", "`yarnPath`"),
        ("plugins:\n  - path: .yarn/plugins/evil.cjs\n", "`plugins`"),
        ('{"yarnPath": "x.cjs", "plugins": []}', "`yarnPath` and `plugins`"),
    ],
)
def test_a_berry_yarnrc_naming_code_of_the_repository_is_a_named_problem(
    yarnrc: str, named: str
) -> None:
    project, problems = detect(
        {
            "package.json": manifest(packageManager="yarn@4.5.0"),
            "yarn.lock": BERRY_LOCK,
            ".yarnrc.yml": yarnrc,
            ".yarn/releases/yarn-4.5.0.cjs": "process.exit(3)",
        }
    )
    assert project is not None and project.setup == ()
    assert problems == [
        f".yarnrc.yml sets {named}, JavaScript files of the repository that Yarn would run "
        "during the install (setup never runs the repository's code): remove "
        f"{named} from .yarnrc.yml and pin Yarn with package.json's packageManager "
        "(`yarn@4.x.y`) instead"
    ]
    assert ".yarn/releases/yarn-4.5.0.cjs" in project.inputs


def test_a_berry_yarnrc_without_code_is_installed_and_a_broken_one_is_named() -> None:
    base = {"package.json": manifest(packageManager="yarn@4.5.0"), "yarn.lock": BERRY_LOCK}
    assert found({**base, ".yarnrc.yml": "nodeLinker: node-modules\n"}).setup
    for broken in ("a: [", "- a\n- b\n", "[" * 10_000):
        project, problems = detect({**base, ".yarnrc.yml": broken})
        assert project is not None and project.setup == ()
        assert len(problems) == 1 and problems[0].startswith(".yarnrc.yml "), problems
    # Yarn 1 never reads .yarnrc.yml
    assert found({"package.json": manifest(), "yarn.lock": YARN1_LOCK, ".yarnrc.yml": "a: ["})


@pytest.mark.parametrize(
    ("pinned", "unsigned"),
    [("yarn@1.22.22", True), ("yarn@1.22.22+sha512.abc", False), (None, False)],
)
def test_an_unhashed_yarn_1_is_downloaded_without_the_signature_npm_never_published(
    pinned: str | None, unsigned: bool
) -> None:
    fields = {"packageManager": pinned} if pinned else {}
    project = found({"package.json": manifest(**fields), "yarn.lock": YARN1_LOCK})
    assert ("COREPACK_INTEGRITY_KEYS=0" in project.setup[0].argv) is unsigned


def test_package_manager_field_picks_the_manager_and_its_version() -> None:
    pinned = "pnpm@9.12.3+sha512.abc"
    project = found(
        {
            "package.json": manifest(packageManager=pinned),
            "package-lock.json": "{}",
            "pnpm-lock.yaml": "lockfileVersion: '9.0'\n",
        }
    )
    assert (project.manager, project.lock_file) == ("pnpm", "pnpm-lock.yaml")
    assert install(project)[1] == pinned
    assert project.inputs == ("package-lock.json", "package.json", "pnpm-lock.yaml")


def test_package_manager_without_its_lock_file_is_a_problem() -> None:
    project, problems = detect(
        {"package.json": manifest(packageManager="pnpm@9.0.0"), "package-lock.json": "{}"}
    )
    assert project is not None and project.setup == ()
    assert problems == [
        "package.json's packageManager names pnpm but pnpm-lock.yaml is not committed: "
        "no locked install is possible"
    ]


@pytest.mark.parametrize("field", ["pnpm", "bun@1.0.0", 7])
def test_a_malformed_package_manager_field_is_named(field: object) -> None:
    _, problems = detect({"package.json": manifest(packageManager=field), "yarn.lock": ""})
    assert problems == [f"package.json's packageManager {field!r} is not `npm|pnpm|yarn@<version>`"]


def test_no_lock_file_is_a_named_problem_never_an_unlocked_install() -> None:
    project, problems = detect({"package.json": manifest(scripts={"test": "jest"})})
    assert project is not None
    assert project.setup == ()
    assert project.test_script == "jest"
    assert problems == [
        "package.json has no lock file (package-lock.json, npm-shrinkwrap.json, "
        "pnpm-lock.yaml or yarn.lock): no locked install is possible"
    ]


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("{not json", "package.json is not valid JSON: Expecting property name"),
        ("[1, 2]", "package.json is not a JSON object but a list"),
        (b"\xff\xfe{}", "package.json is not UTF-8"),
        ('{"a":' * 100_000 + "1" + "}" * 100_000, "package.json is nested too deeply"),
    ],
)
def test_a_malformed_package_json_is_named(raw: str | bytes, problem: str) -> None:
    project, problems = detect({"package.json": raw, "package-lock.json": "{}"})
    assert project is None
    assert len(problems) == 1 and problems[0].startswith(problem)


def test_a_byte_order_mark_is_read_as_npm_reads_it() -> None:
    raw = "\ufeff" + manifest(scripts={"test": "node --test"})
    assert found({"package.json": raw, "package-lock.json": "{}"}).test_script == "node --test"


def test_no_package_json_is_no_project_and_an_orphan_lock_is_named() -> None:
    assert detect({"pyproject.toml": "[project]\n"}) == (None, [])
    assert detect({"yarn.lock": YARN1_LOCK}) == (
        None,
        ["yarn.lock is committed without a package.json: nothing to install"],
    )


@pytest.mark.parametrize(
    ("scripts", "expected"),
    [
        ({"test": "node --test"}, "node --test"),
        ({"test": 'echo "Error: no test specified" && exit 1'}, None),
        ({"test": "  "}, None),
        ({"lint": "eslint ."}, None),
        ("not a table", None),
    ],
)
def test_the_test_script_and_npm_inits_placeholder(scripts: object, expected: str | None) -> None:
    project = found({"package.json": manifest(scripts=scripts), "package-lock.json": "{}"})
    assert project.test_script == expected


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"eslint.config.mjs": "export default []\n"}, "eslint.config.mjs"),
        ({"eslint.config.ts": "export default []\n"}, "eslint.config.ts"),
        ({".eslintrc.json": "{}"}, ".eslintrc.json"),
        ({".eslintrc": "{}"}, ".eslintrc"),
        ({}, None),
    ],
)
def test_eslint_is_configured_by_a_committed_file(
    extra: dict[str, str | bytes], expected: str | None
) -> None:
    files: dict[str, str | bytes] = {"package.json": manifest(), "package-lock.json": "{}"}
    assert found(files | extra).eslint_config == expected


def test_eslint_config_key_in_package_json_counts() -> None:
    files = {"package.json": manifest(eslintConfig={"rules": {}}), "package-lock.json": "{}"}
    assert found(files).eslint_config == "package.json#eslintConfig"


def test_a_tooling_package_json_without_lock_tests_or_eslint_is_no_javascript_side() -> None:
    # a Python repository keeping prettier settings in package.json must still set up
    tooling = manifest(prettier={"semi": False}, devDependencies={"prettier": "^3"})
    assert detect({"package.json": tooling, "pyproject.toml": "[project]\n"}) == (None, [])
    eslint = manifest(eslintConfig={"root": True}, devDependencies={"eslint": "^9"})
    project, problems = detect({"package.json": eslint})
    assert project is not None and problems[0].startswith("package.json has no lock file")
